"""Search/replace edits: applying them to a real folder, and deriving them from two texts."""

import random
from pathlib import Path

import pytest

from engine.harness.edits import EditError, apply_edits, edits_from_change
from engine.harness.plan import Edit


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text, encoding="utf-8")
    return tree


def test_replace_create_and_delete_in_order(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {"a.py": "x = 1\ny = 2\n", "old.txt": "bye\n"})
    changed = apply_edits(
        tree,
        [
            Edit(path="a.py", search="y = 2\n", replace="y = 3\n"),
            Edit(path="pkg/new.py", replace="z = 0\n"),
            Edit(path="a.py", search="x = 1\ny = 3", replace="x = 9\ny = 3"),
            Edit(path="old.txt", delete=True),
        ],
    )
    assert changed == ["a.py", "pkg/new.py", "old.txt"]
    assert (tree / "a.py").read_text() == "x = 9\ny = 3\n"
    assert (tree / "pkg/new.py").read_text() == "z = 0\n"
    assert not (tree / "old.txt").exists()


def test_missing_search_names_edit_path_and_first_line(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {"a.py": "x = 1\n"})
    edits = [
        Edit(path="a.py", search="x = 1\n", replace="x = 2\n"),
        Edit(path="a.py", search="x = 1\nmore\n", replace=""),
    ]
    with pytest.raises(EditError, match=r"edit 1: a.py: search text not found: 'x = 1'$") as err:
        apply_edits(tree, edits)
    assert (err.value.index, err.value.path) == (1, "a.py")
    assert (tree / "a.py").read_text() == "x = 1\n", "nothing is written when an edit fails"


def test_ambiguous_search_counts_overlapping_matches(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {"a.txt": "aaaa\n", "b.txt": "k\nk\nk\n"})
    with pytest.raises(EditError, match="edit 0: a.txt: search text matches 3 times"):
        apply_edits(tree, [Edit(path="a.txt", search="aa", replace="b")])
    with pytest.raises(EditError, match="b.txt: search text matches 3 times"):
        apply_edits(tree, [Edit(path="b.txt", search="k\n", replace="")])


@pytest.mark.parametrize(
    ("edit", "detail"),
    [
        (Edit(path="a.py", replace="new"), "cannot create: the file already exists"),
        (Edit(path="gone.py", delete=True), "cannot delete: the file does not exist"),
        (Edit(path="gone.py", search="x", replace="y"), "cannot edit: the file does not exist"),
        (Edit(path="pkg", search="x", replace="y"), "not a regular file"),
    ],
)
def test_refused_operations(tmp_path: Path, edit: Edit, detail: str) -> None:
    tree = _tree(tmp_path, {"a.py": "x\n", "pkg/m.py": "x\n"})
    with pytest.raises(EditError, match=detail):
        apply_edits(tree, [edit])


def test_links_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("x = 1\n")
    tree = _tree(tmp_path, {"a.py": "x = 1\n"})
    (tree / "out").symlink_to(outside)
    (tree / "link.py").symlink_to(outside / "secret.py")
    with pytest.raises(EditError, match="leads out of the checkout"):
        apply_edits(tree, [Edit(path="out/secret.py", search="x", replace="y")])
    with pytest.raises(EditError, match="leads out of the checkout"):
        apply_edits(tree, [Edit(path="out/new.py", replace="y")])
    with pytest.raises(EditError, match="is a link"):
        apply_edits(tree, [Edit(path="link.py", search="x", replace="y")])
    assert (outside / "secret.py").read_text() == "x = 1\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.py"]


def test_not_utf8_is_refused(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {})
    (tree / "bin.dat").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(EditError, match="bin.dat: the file is not UTF-8 text"):
        apply_edits(tree, [Edit(path="bin.dat", search="x", replace="y")])


def _round_trip(tmp_path: Path, old: str | None, new: str | None) -> list[Edit]:
    """Apply edits_from_change(old, new) to a real file holding `old`; assert it becomes `new`."""
    tree = tmp_path / f"rt{len(list(tmp_path.iterdir()))}"
    tree.mkdir()
    target = tree / "f.py"
    if old is not None:
        target.write_bytes(old.encode("utf-8"))
    edits = edits_from_change("f.py", old, new)
    apply_edits(tree, edits)
    if new is None:
        assert not target.exists()
    else:
        assert target.read_bytes().decode("utf-8") == new
    return edits


REPEATED = "def f():\n    return 1\n\n\ndef g():\n    return 1\n\n\ndef h():\n    return 1\n"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a\nb\nc\n", "a\nB\nc\n"),
        ("a\nb\nc\n", "Z\nb\nc\n"),
        ("a\nb\nc\n", "a\nb\nZ\n"),
        ("a\nb\nc", "a\nb\nc\n"),
        ("a\nb\nc\n", "a\nb\nc"),
        ("a\nb\nc", "a\nb\nd"),
        ("a\nb\n", "x\na\nb\n"),
        ("a\nb\n", "a\nb\nx\n"),
        ("a\nb\n", "a\nx\nb\n"),
        ("a\nb\nc\n", "a\nc\n"),
        ("a\nb\nc\n", ""),
        ("a\nb\nc\n", "totally\ndifferent\n"),
        ("", "now\nfull\n"),
        ("x\r\ny\r\n", "x\r\nz\r\n"),
        (REPEATED, REPEATED.replace("def g():\n    return 1", "def g():\n    return 2")),
        (REPEATED, REPEATED + "\n\ndef i():\n    return 1\n"),
        (REPEATED, REPEATED.replace("    return 1\n", "    return 0\n")),
        (REPEATED, REPEATED.replace("\n\ndef g():\n    return 1\n", "")),
        ("k\nk\nk\nk\n", "k\nk\nX\nk\nk\n"),
        ("k\nk\nk\nk\n", "k\nk\nk\n"),
        ("k\nk\nk\nk\n", "k\nX\nk\nX\nk\nX\n"),
    ],
)
def test_edits_from_change_round_trip(tmp_path: Path, old: str, new: str) -> None:
    _round_trip(tmp_path, old, new)


def test_edits_are_minimal_for_a_unique_line(tmp_path: Path) -> None:
    edits = _round_trip(tmp_path, "a\nb\nc\n", "a\nB\nc\n")
    assert edits == [Edit(path="f.py", search="b\n", replace="B\n")]


def test_repeated_line_gets_context_until_unique(tmp_path: Path) -> None:
    edits = _round_trip(tmp_path, "k\nk\nx\nk\nk\n", "k\nk\nx\nk\nK\n")
    assert len(edits) == 1
    assert edits[0].search.count("\n") > 1
    assert "x\n" in edits[0].search


def test_create_delete_and_unchanged(tmp_path: Path) -> None:
    assert _round_trip(tmp_path, None, "new\n") == [Edit(path="f.py", replace="new\n")]
    assert _round_trip(tmp_path, None, "") == [Edit(path="f.py", replace="")]
    assert _round_trip(tmp_path, "old\n", None) == [Edit(path="f.py", delete=True)]
    assert edits_from_change("f.py", "same\n", "same\n") == []


def test_mutations_of_repetitive_text_round_trip(tmp_path: Path) -> None:
    rng = random.Random(4)
    vocabulary = ["pass\n", "x = 1\n", "\n", "return x\n", "x = 1", "y\n"]
    for _ in range(400):
        old = "".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 14)))
        lines = old.splitlines(keepends=True)
        for _ in range(rng.randint(1, 4)):
            at = rng.randint(0, len(lines))
            action = rng.choice(("insert", "delete", "replace"))
            if action == "insert":
                lines.insert(at, rng.choice(vocabulary))
            elif lines and at < len(lines):
                if action == "delete":
                    del lines[at]
                else:
                    lines[at] = rng.choice(vocabulary)
        _round_trip(tmp_path, old, "".join(lines))
