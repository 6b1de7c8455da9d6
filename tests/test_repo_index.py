"""The worktree index (symbols, imports, unparsable files, determinism) and context retrieval
(ranking, the token budget: full source, outline, left out)."""

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.harness.package import HarnessError
from engine.harness.repo_index import Import, build_index
from engine.harness.retrieve import Context, count_tokens, rank, select_context

CART = '''"""Shopping cart totals and discounts.

The rest of the docstring is not indexed.
"""
import os
from shop import pricing
from . import missing_mod
from .pricing import apply_discount, RATE
import json as j, shop.pricing


@register
@dataclass
class Cart(Base, metaclass=Meta):
    """A cart."""

    def total(self, *, tax: float = 0.0) -> float:
        def inner():
            return 1
        return inner() + tax

    async def refresh(self):
        import shop.pricing

    class Line:
        def price(self):
            return 0


def helper(x, /, y=2, *args, **kw):
    return x


async def fetch() -> None:
    pass
'''

FILES = {
    "src/shop/__init__.py": '"""Shop package."""\nfrom .cart import Cart\n',
    "src/shop/cart.py": CART,
    "src/shop/pricing.py": (
        '"""Price rules."""\n\nRATE = 0.1\n\n\n'
        "def apply_discount(amount: float, rate: float) -> float:\n"
        "    return amount * (1 - rate)\n"
    ),
    "src/shop/broken.py": '"""Never parses."""\ndef oops(:\n    pass\n',
    "tests/test_cart.py": "from shop.cart import Cart\n\n\ndef test_total():\n    Cart()\n",
    "top.py": "from .. import nothing\n",
    "README.md": "# shop\n",
    ".hidden/secret.py": "x = 1\n",
    "build/gen.py": "x = 1\n",
    "dist/gen.py": "x = 1\n",
    ".venv/lib/site.py": "x = 1\n",
    "src/shop/__pycache__/cart.py": "x = 1\n",
}
INDEXED = [
    "link.py",
    "src/shop/__init__.py",
    "src/shop/broken.py",
    "src/shop/cart.py",
    "src/shop/latin.py",
    "src/shop/pricing.py",
    "tests/test_cart.py",
    "top.py",
]


def _write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = _write_tree(tmp_path / "tree", FILES)
    (root / "src/shop/latin.py").write_bytes(
        b'# -*- coding: latin-1 -*-\n"""Caf\xe9 menu for the latin shop."""\nMENU = 1\n'
    )
    (root / "link.py").symlink_to(root / "src/shop/pricing.py")
    return root


def test_indexes_python_files_in_path_order_skipping_tool_folders(tree: Path) -> None:
    assert [entry.path for entry in build_index(tree).files] == INDEXED


def test_symbols_cover_top_level_and_class_level_definitions(tree: Path) -> None:
    cart = build_index(tree).file("src/shop/cart.py")
    assert cart.module == "shop.cart"
    assert cart.docstring == "Shopping cart totals and discounts."
    assert cart.lines == CART.count("\n")
    assert cart.error is None
    got = [(s.name, s.kind, s.start, s.end, s.signature) for s in cart.symbols]
    assert got == [
        ("Cart", "class", 12, 27, "class Cart(Base, metaclass=Meta)"),
        ("Cart.total", "method", 17, 20, "def total(self, *, tax: float=0.0) -> float"),
        ("Cart.refresh", "async method", 22, 23, "async def refresh(self)"),
        ("Cart.Line", "class", 25, 27, "class Line"),
        ("Cart.Line.price", "method", 26, 27, "def price(self)"),
        ("helper", "function", 30, 31, "def helper(x, /, y=2, *args, **kw)"),
        ("fetch", "async function", 34, 35, "async def fetch() -> None"),
    ]
    lines = CART.splitlines()
    assert lines[11] == "@register"
    assert lines[26] == "            return 0"


def test_imports_resolve_to_repository_files(tree: Path) -> None:
    index = build_index(tree)
    assert index.file("src/shop/cart.py").imports == [
        Import(line=5, module="os", names=[], files=[]),
        Import(
            line=6,
            module="shop",
            names=["pricing"],
            files=["src/shop/__init__.py", "src/shop/pricing.py"],
        ),
        Import(line=7, module="shop", names=["missing_mod"], files=["src/shop/__init__.py"]),
        Import(
            line=8,
            module="shop.pricing",
            names=["apply_discount", "RATE"],
            files=["src/shop/pricing.py"],
        ),
        Import(line=9, module="json", names=[], files=[]),
        Import(line=9, module="shop.pricing", names=[], files=["src/shop/pricing.py"]),
        Import(line=23, module="shop.pricing", names=[], files=["src/shop/pricing.py"]),
    ]
    assert index.file("src/shop/__init__.py").imports == [
        Import(line=2, module="shop.cart", names=["Cart"], files=["src/shop/cart.py"])
    ]
    assert index.file("tests/test_cart.py").imports[0].files == ["src/shop/cart.py"]
    assert index.file("top.py").imports == [
        Import(line=1, module="..", names=["nothing"], files=[])
    ]


def test_unparsable_and_unreadable_files_are_recorded_not_fatal(tree: Path) -> None:
    index = build_index(tree)
    broken = index.file("src/shop/broken.py")
    assert broken.error is not None
    assert broken.error.startswith("syntax error: line 2:")
    assert (broken.symbols, broken.imports, broken.lines) == ([], [], 3)
    link = index.file("link.py")
    assert link.error == "a symbolic link; not read"
    latin = index.file("src/shop/latin.py")
    assert latin.error is None
    assert latin.docstring == "Café menu for the latin shop."


def test_code_too_deep_for_the_parser_is_recorded(tmp_path: Path) -> None:
    (tmp_path / "deep.py").write_text("x = " + "-" * 100_000 + "1\n", encoding="utf-8")
    (tmp_path / "fine.py").write_text("def ok():\n    pass\n", encoding="utf-8")
    index = build_index(tmp_path)
    assert index.file("deep.py").error == "cannot be parsed: nested too deeply for Python's parser"
    assert [s.name for s in index.file("fine.py").symbols] == ["ok"]


def test_index_is_byte_identical_for_the_same_tree(tree: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for rel in reversed(sorted(FILES)):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tree / rel, copy / rel)
    shutil.copyfile(tree / "src/shop/latin.py", copy / "src/shop/latin.py")
    (copy / "link.py").symlink_to(copy / "src/shop/pricing.py")
    first = build_index(tree).model_dump_json()
    assert build_index(tree).model_dump_json() == first
    assert build_index(copy).model_dump_json() == first


def test_count_tokens_is_utf8_bytes_over_three_rounded_up() -> None:
    assert [count_tokens(t) for t in ["", "abc", "abcd", "é", "日本語", "x" * 300]] == [
        0,
        1,
        2,
        1,
        3,
        100,
    ]


def test_ranking_weighs_paths_symbols_and_docstrings_ties_by_path(tree: Path) -> None:
    index = build_index(tree)
    ranked = [
        (entry.path, points) for entry, points in rank(index, "Carts: price each line, totals")
    ]
    assert ranked[:3] == [
        ("src/shop/cart.py", 3 * 1 + 2 * 4 + 1 * 2),
        ("tests/test_cart.py", 3 * 1 + 2 * 1),
        ("src/shop/pricing.py", 1 * 1),
    ]
    assert ranked[3:] == [(path, 0) for path in INDEXED if path not in {p for p, _ in ranked[:3]}]
    top = [(e.path, points) for e, points in rank(index, "Apply the discount rate")][:2]
    assert top == [("src/shop/pricing.py", 2 * 2), ("src/shop/cart.py", 1)]


def _repo_with_fillers(root: Path, count: int) -> Path:
    files = dict(FILES)
    body = "".join(f"def step_{n}(value):\n    return value + {n}\n\n\n" for n in range(30))
    for n in range(count):
        files[f"src/shop/filler_{n:02d}.py"] = f'"""Filler module {n}."""\n\n\n{body}'
    return _write_tree(root, files)


def test_generous_budget_shows_relevant_files_in_full_and_the_rest_as_outline(
    tmp_path: Path,
) -> None:
    tree = _repo_with_fillers(tmp_path / "tree", 3)
    context = select_context(build_index(tree), tree, "Apply the rate", 100_000)
    assert context.full_files == ["src/shop/pricing.py"]
    assert context.outline_files[:3] == [
        "src/shop/__init__.py",
        "src/shop/broken.py",
        "src/shop/cart.py",
    ]
    assert context.omitted_files == []
    assert "left out for the token budget" not in context.text
    pricing = (tree / "src/shop/pricing.py").read_text(encoding="utf-8")
    assert pricing in context.text
    assert "=== src/shop/cart.py (outline, 35 lines) ===" in context.text
    assert "  L17-20 def total(self, *, tax: float=0.0) -> float" in context.text
    assert "imports: os, shop (src/shop/__init__.py, src/shop/pricing.py)" in context.text
    assert "=== src/shop/broken.py (outline, 3 lines) ===\nsyntax error: line 2:" in context.text
    assert context.tokens == count_tokens(context.text)


def test_tight_budget_leaves_files_out_and_says_so(tmp_path: Path) -> None:
    tree = _repo_with_fillers(tmp_path / "tree", 40)
    index = build_index(tree)
    context = select_context(index, tree, "Apply the discount rate", 1500)
    assert context.tokens <= 1500
    assert context.full_files == ["src/shop/pricing.py", "src/shop/cart.py"]
    omitted = len(context.omitted_files)
    assert omitted > 10
    assert context.omitted_files == [f"src/shop/filler_{n:02d}.py" for n in range(40 - omitted, 40)]
    assert context.outline_files[-2:] == ["tests/test_cart.py", "top.py"]
    filler = context.text.split("=== src/shop/filler_00.py")[1].split("\n\n")[0]
    assert 1500 - context.tokens < count_tokens(filler)
    everything = context.full_files + context.outline_files + context.omitted_files
    assert sorted(everything) == sorted(entry.path for entry in index.files)
    assert context.text.endswith(
        f"left out for the token budget: {', '.join(context.omitted_files)}\n"
    )
    for path in context.outline_files:
        assert f"=== {path} (outline," in context.text
    for path in context.omitted_files:
        assert f"=== {path} (" not in context.text
    assert select_context(index, tree, "Apply the discount rate", 1500) == context


def test_half_the_budget_caps_full_sources_before_outlines(tmp_path: Path) -> None:
    tree = _repo_with_fillers(tmp_path / "tree", 40)
    index = build_index(tree)
    context = select_context(index, tree, "filler module step", 3000)
    assert context.full_files
    full_text = "".join((tree / path).read_text(encoding="utf-8") for path in context.full_files)
    assert count_tokens(full_text) <= 1500
    assert len(context.outline_files) > len(context.full_files)


def test_only_utf8_files_are_shown_in_full(tree: Path) -> None:
    index = build_index(tree)
    latin = select_context(index, tree, "latin cafe menu", 100_000)
    assert "src/shop/latin.py" in latin.outline_files
    assert latin.full_files == []
    broken = select_context(index, tree, "fix the broken oops", 100_000)
    assert broken.full_files == ["src/shop/broken.py"]
    assert FILES["src/shop/broken.py"] in broken.text
    link = select_context(index, tree, "the link", 100_000)
    assert link.full_files == []
    assert "=== link.py (outline, 0 lines) ===\na symbolic link; not read\n" in link.text


def test_budget_too_small_for_the_top_outline_is_refused(tree: Path) -> None:
    index = build_index(tree)
    with pytest.raises(HarnessError) as caught:
        select_context(index, tree, "Apply the discount rate", 40)
    message = str(caught.value)
    assert "budget of 40 tokens" in message
    assert "outline of the top-ranked file src/shop/pricing.py" in message
    assert "harness.context_token_budget" in message
    needed = int(message.split("that needs ")[1].split(" tokens")[0])
    assert needed > 40
    fitted = select_context(index, tree, "Apply the discount rate", needed)
    assert fitted.tokens == needed
    assert fitted.outline_files[0] == "src/shop/pricing.py"


def test_empty_tree_gives_an_explicit_empty_context(tmp_path: Path) -> None:
    context = select_context(build_index(tmp_path), tmp_path, "anything", 256)
    assert context.text == "Repository context: the worktree has no Python files.\n"
    assert (context.full_files, context.outline_files, context.omitted_files) == ([], [], [])
    with pytest.raises(HarnessError, match="budget of 5 tokens cannot hold the note"):
        select_context(build_index(tmp_path), tmp_path, "anything", 5)


def test_context_refuses_a_count_over_its_budget() -> None:
    with pytest.raises(ValidationError, match="over the budget 1"):
        Context(
            text="abcdef", tokens=2, budget=1, full_files=[], outline_files=[], omitted_files=[]
        )
    with pytest.raises(ValidationError, match="the text counts 2"):
        Context(
            text="abcdef", tokens=1, budget=9, full_files=[], outline_files=[], omitted_files=[]
        )
