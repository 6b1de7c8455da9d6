"""`build_training_data` over a real approved package whose commits were validated for real.

The demo package gets two more commits, each a real fix with a test: one also adds a file that is
not UTF-8 text (search/replace edits cannot express it, so the stages built on the gold answer
are skipped with the reason) and one has an empty message (no task at all: the commit yields
nothing and says why). The tasks are validated by `validate_task` (pytest in the sandbox).
"""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from workspaces import HARNESS, open_workspace

from app.cli import cli
from app.cli_data import data
from engine.core.workspace import Workspace
from engine.demo.hostile import edit_manifest
from engine.demo.repo import demo_git
from engine.harness.task_validation import validate_task
from engine.intake.approval import approve_package
from engine.training_data.derive import build_training_data
from engine.training_data.store import item_from_row

pytestmark = pytest.mark.slow  # a package built and its commits validated first

if "data" not in cli.commands:
    cli.add_command(data)

SHOUT = '"""Loud text."""\n\n\ndef shout(text: str) -> str:\n    return text.upper() + "!"\n'
TEST_SHOUT = (
    'from textkit.shout import shout\n\n\ndef test_shout():\n    assert shout("hi") == "HI!"\n'
)
WHISPER = '"""Quiet text."""\n\n\ndef whisper(text: str) -> str:\n    return text.lower()\n'
TEST_WHISPER = (
    'from textkit.whisper import whisper\n\n\ndef test_whisper():\n    assert whisper("A") == "a"\n'
)
FOLD = "Fold accented letters in slugify"
TRUNCATE = "Add truncate with an ellipsis"
COVER = "Cover slugify edge cases in tests"
SHOUT_SUBJECT = "Add shout with its logo"
QUIET = "(no message)"


def _commit(package: Path, files: dict[str, str | bytes], message: str, day: int) -> None:
    repo = package / "repo"
    parent = demo_git(repo, "rev-parse", "HEAD")
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            (repo / rel).write_bytes(text)
        else:
            (repo / rel).write_text(text, encoding="utf-8")
    date = f"2024-03-{day:02d}T10:00:00+00:00"
    demo_git(repo, "add", "--all", date=date)
    args = ["commit", "--quiet", "--no-verify", "--allow-empty-message", "-m", message]
    demo_git(repo, *args, date=date)
    sha = demo_git(repo, "rev-parse", "HEAD")
    entry = {
        "sha": sha,
        "parent": parent,
        "date": f"2024-03-{day:02d}T10:00:00Z",
        "subject": message or QUIET,
        "files_changed": len(files),
        "lines_added": 8,
        "lines_deleted": 0,
        "planning_type": "step_plan",
        "test_files": [rel for rel in files if rel.startswith("tests/")],
    }

    def add(manifest: dict) -> None:
        manifest["commits"].append(entry)
        manifest["head"] = sha

    edit_manifest(package, add)


@pytest.fixture(scope="module")
def validated(
    tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]
) -> tuple[Path, str, dict[str, str]]:
    """A workspace root with the package approved and five commits validated (four usable);
    the package digest; subjects to shas. The database is closed: tests work on copies."""
    base = tmp_path_factory.mktemp("derive")
    package = copy_package(base)
    logo = {"textkit/logo.bin": b"\xff\xfe\x00\x81"}
    shout = {"textkit/shout.py": SHOUT, "tests/test_shout.py": TEST_SHOUT, **logo}
    _commit(package, shout, SHOUT_SUBJECT, 21)
    _commit(package, {"textkit/whisper.py": WHISPER, "tests/test_whisper.py": TEST_WHISPER}, "", 22)
    root = base / "ws"
    ws = open_workspace(root, HARNESS)
    digest = approve_package(ws, package).digest
    manifest = json.loads((package / "manifest.json").read_text())
    shas = {c["subject"]: c["sha"] for c in manifest["commits"]}
    for subject in (FOLD, TRUNCATE, COVER, SHOUT_SUBJECT, QUIET):
        validate_task(ws, digest, shas[subject])
    ws.db.conn.close()
    return root, digest, shas


@pytest.fixture
def ws(tmp_path: Path, validated: tuple[Path, str, dict[str, str]]) -> Workspace:
    root = tmp_path / "ws"
    shutil.copytree(validated[0], root, symlinks=True)
    return Workspace.open(root)


def _items(ws: Workspace, sha: str) -> list:
    return [item_from_row(row) for row in ws.db["examples"].rows_where("sha = ?", [sha])]


def test_usable_tasks_become_examples_and_pairs_with_their_lineage(ws, validated):
    _, digest, shas = validated
    statuses = dict(ws.db.execute("SELECT sha, status FROM tasks").fetchall())
    assert statuses[shas[COVER]] == "unusable"
    assert {statuses[shas[s]] for s in (FOLD, TRUNCATE, SHOUT_SUBJECT, QUIET)} == {"usable"}

    [report] = build_training_data(ws).packages
    assert (report.name, report.digest) == ("textkit", digest)
    folder = ws.db.execute("SELECT source_path FROM packages").fetchone()[0]
    assert report.label == f"{Path(folder).name}@{digest[:7]}" + (
        "" if Path(folder).name == "textkit" else " (textkit)"
    )
    assert (report.tasks_derived, report.tasks_already_derived) == (4, 0)
    assert report.pairs_added == {"execute_code": 1}  # slugify; shout is added, not changed
    assert report.already_present == 0
    stored = ws.db["examples"].count_where("kind = 'sft'")
    assert report.examples_added == stored > 0
    no_gold = "no gold answer: search/replace edits cannot express changes to textkit/logo.bin"
    assert report.skipped == {
        f"{stage} example: {no_gold} (a link, a submodule or not UTF-8 text)": 1
        for stage in ("execute_code", "meta_plan", "step_plan")
    } | {"commit: commit <sha> has an empty message, so there is no task": 1}

    fold = _items(ws, shas[FOLD])
    assert {i.stage for i in fold if i.kind == "sft"} == {
        "task_analysis",
        "scope",
        "precision",
        "execute_code",
        "meta_plan",
        "step_plan",
        "test_plan",
    }
    for item in fold:
        assert (item.repo, item.domain, item.package_digest, item.sha) == (
            "textkit",
            "text-processing",
            digest,
            shas[FOLD],
        )
        assert (item.task_key, item.task_date) == (f"textkit:{shas[FOLD]}", "2024-03-04T10:00:00Z")
        assert [m.role for m in item.prompt] == ["system", "user"]
        assert FOLD in item.prompt[1].content
    [pair] = [i for i in fold if i.kind == "preference"]
    assert (pair.stage, pair.source, pair.origin) == ("execute_code", "synthetic", "codefavor")
    assert "unicodedata.normalize" in pair.chosen[0].content
    assert pair.rejected is not None and "unicodedata" not in pair.rejected[0].content
    sft = [i for i in fold if i.kind == "sft"]
    assert {(i.source, i.origin) for i in sft} == {("synthetic", "commit")}
    assert all(len(i.chosen) == 1 and i.chosen[0].role == "assistant" for i in sft)

    shout = {i.stage for i in _items(ws, shas[SHOUT_SUBJECT])}
    assert shout == {"task_analysis", "scope", "precision", "test_plan"}
    assert _items(ws, shas[QUIET]) == [] and _items(ws, shas[COVER]) == []

    rows = {
        row["sha"]: row for row in ws.db["derivations"].rows_where("package_digest = ?", [digest])
    }
    assert set(rows) == {shas[s] for s in (FOLD, TRUNCATE, SHOUT_SUBJECT, QUIET)}
    assert (rows[shas[FOLD]]["examples"], rows[shas[FOLD]]["pairs"]) == (7, 1)
    assert json.loads(rows[shas[FOLD]]["skipped_json"]) == []
    quiet = rows[shas[QUIET]]
    assert (quiet["examples"], quiet["pairs"]) == (0, 0)
    [why] = json.loads(quiet["skipped_json"])
    assert (why["what"], why["stage"]) == ("commit", None)
    assert why["detail"] == f"commit {shas[QUIET]} has an empty message, so there is no task"
    skipped = {s["stage"] for s in json.loads(rows[shas[SHOUT_SUBJECT]]["skipped_json"])}
    assert skipped == {"execute_code", "meta_plan", "step_plan"}


def test_a_second_build_adds_nothing(ws):
    build_training_data(ws)
    before = ws.db.execute("SELECT id, content_hash FROM examples ORDER BY id").fetchall()
    derived = ws.db.execute("SELECT * FROM derivations ORDER BY sha").fetchall()
    [report] = build_training_data(ws).packages
    assert (report.tasks_derived, report.tasks_already_derived) == (0, 4)
    assert (report.examples_added, report.pairs_added, report.skipped) == (0, {}, {})
    assert ws.db.execute("SELECT id, content_hash FROM examples ORDER BY id").fetchall() == before
    assert ws.db.execute("SELECT * FROM derivations ORDER BY sha").fetchall() == derived


def test_cli_builds_the_named_package_and_counts_by_stage_kind_and_source(ws, validated):
    _, digest, _ = validated
    runner = CliRunner()
    args = ["--workspace", str(ws.root), "data"]
    empty = runner.invoke(cli, [*args, "stats"])
    assert (empty.exit_code, empty.output) == (0, "no examples or pairs\n")

    built = runner.invoke(cli, [*args, "build", "--package", digest[:10]])
    assert built.exit_code == 0, built.output
    assert f"textkit@{digest[:7]}: 4 tasks derived, 0 derived before" in built.output
    assert "  pairs added: 1 (execute_code 1)" in built.output
    assert "  skipped commit: commit <sha> has an empty message, so there is no task: 1" in (
        built.output
    )

    stats = runner.invoke(cli, [*args, "stats"])
    assert stats.exit_code == 0, stats.output
    lines = stats.output.splitlines()
    assert lines[0].split() == ["stage", "kind", "source", "count"]
    counts = {tuple(line.split()[:3]): int(line.split()[3]) for line in lines[1:-1]}
    assert counts[("execute_code", "preference", "synthetic")] == 1
    assert counts[("test_plan", "sft", "synthetic")] == 3
    assert lines[-1].split() == ["total", str(ws.db["examples"].count)]

    again = runner.invoke(cli, [*args, "build", "--json"])
    assert json.loads(again.output)["packages"][0]["tasks_already_derived"] == 4

    unknown = runner.invoke(cli, [*args, "build", "--package", "nosuch"])
    assert unknown.exit_code == 1
    assert "no approved package is named 'nosuch'" in unknown.stderr
