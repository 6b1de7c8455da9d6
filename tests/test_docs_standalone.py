"""The repository's docs stand alone: no citation of a file outside it, no pasted screenshots.

The planning documents behind the console are cited by title and section, and
docs/background.md states what the code takes from each cited section. The operator guide's
screenshots are the snapshot tests' SVGs, so a pane that changes fails its snapshot test until
the picture is regenerated.
"""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "operator-guide.md"
BACKGROUND = ROOT / "docs" / "background.md"

OUTSIDE = re.compile(
    r"\.\./shared|/work/|seeds/|\bseeds? ?0\d\d\b|\b(?:DESIGN|REFERENCE|STYLE)\.md\b", re.I
)
"""A path or file name of the design documents outside the repository, or a seed's number."""

PLAN_FILE_NAME = re.compile(r"[\"`]DESIGN\.md[\"`]")
"""`DESIGN.md` as data: a plan file name the plan-artifact finder recognises, not a citation."""

CITED = re.compile(r"(LoRA Training Strategy|Phase 4 Guidelines)\*?\s+§(\d+(?:\.\d+)?)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def _tracked() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    return [ROOT / name.decode() for name in names if name]


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary file (or one deleted but not yet staged)."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8")


def outside_citations(path: Path, text: str) -> list[str]:
    """`path:line: text` for each line of `text` that cites something outside the repository."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not OUTSIDE.search(line):
            continue
        if "plan_artifacts" in path.name and not OUTSIDE.search(PLAN_FILE_NAME.sub("", line)):
            continue
        found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_tracked_file_cites_a_path_outside_the_repository() -> None:
    """Every tracked text file (code, docs, tests, snapshots) is free of `../shared`, `/work/`,
    `seeds/`, seed numbers and the design documents' file names."""
    found = []
    for path in _tracked():
        text = _text(path)
        if text is not None and path != Path(__file__).resolve():
            found += outside_citations(path, text)
    assert not found, "cite the planning documents by title and section:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("line", "cites"),
    [
        ("(seed 004 §9.1)", True),
        ("see ../shared/DESIGN.md", True),
        ("git clone /work/.mirror/attrs", True),
        ("the facts in REFERENCE.md", True),
        ("(LoRA Training Strategy §9.1)", False),
        ("--seeds 1,2 and a seed of 7", False),
    ],
)
def test_the_check_tells_a_citation_from_ordinary_text(line: str, cites: bool) -> None:
    """The pattern catches each form a citation has taken and passes the words around them."""
    assert bool(outside_citations(ROOT / "docs" / "x.md", line)) is cites


def test_a_plan_file_name_is_data_only_in_the_plan_artifact_modules() -> None:
    """`"DESIGN.md"` is a plan file name in the plan-artifact finder and its tests; anywhere
    else, and unquoted there, it is a citation."""
    quoted = '("DESIGN.md", True),'
    assert not outside_citations(ROOT / "tests" / "test_plan_artifacts.py", quoted)
    assert outside_citations(ROOT / "docs" / "decisions.md", quoted)
    assert outside_citations(ROOT / "engine" / "plan_artifacts.py", "see DESIGN.md")


def _background_sections() -> dict[str, set[str]]:
    """The sections docs/background.md summarises, per document title."""
    text = BACKGROUND.read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.M)
    sections: dict[str, set[str]] = {}
    for title in ("LoRA Training Strategy", "Phase 4 Guidelines"):
        [part] = [p for p in parts if p.startswith(f"*{title}*")]
        sections[title] = set(re.findall(r"(?:^### |\*\*)§(\d+(?:\.\d+)?)\b", part, re.M))
    return sections


def test_every_section_cited_by_title_is_summarised_in_the_background() -> None:
    """A citation such as `LoRA Training Strategy §9.1` names a section docs/background.md
    states in the repository's own words, so no reader needs the document itself."""
    summarised = _background_sections()
    missing = set()
    for path in _tracked():
        text = _text(path)
        if text is None or path == BACKGROUND:
            continue
        for title, section in CITED.findall(text):
            if section not in summarised[title]:
                missing.add(f"{title} §{section} ({path.relative_to(ROOT)})")
    assert not missing, "summarise in docs/background.md:\n" + "\n".join(sorted(missing))


def test_every_image_the_operator_guide_links_is_a_snapshot_test_output() -> None:
    """Each screenshot in the guide exists and is the SVG a snapshot test stores, so it is
    generated by the test and checked against the running console, never pasted."""
    images = IMAGE.findall(GUIDE.read_text(encoding="utf-8"))
    assert len(images) >= 10
    for link in images:
        image = (GUIDE.parent / link).resolve()
        assert image.is_file(), f"{link}: no such file"
        snapshots = ROOT / "tests" / "__snapshots__"
        assert image.is_relative_to(snapshots), f"{link}: not a snapshot test's SVG"
        module, test = image.parent.name, image.stem
        source = (ROOT / "tests" / f"{module}.py").read_text(encoding="utf-8")
        assert re.search(rf"^def {test}\(", source, re.M), f"{link}: no {module}.{test}"


def test_the_operator_guide_holds_no_pasted_screenshot() -> None:
    """No code block in the guide is a terminal capture: no window title, no panel borders."""
    blocks = re.findall(r"^```.*?^```", GUIDE.read_text(encoding="utf-8"), re.S | re.M)
    pasted = [block for block in blocks if "⭘" in block or "╭─" in block or "▀▀▀" in block]
    assert not pasted, f"{len(pasted)} pasted screenshots; link the snapshot SVGs instead"
