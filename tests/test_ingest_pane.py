"""The Ingest pane driven by Pilot: real packages on a folder drive, real validation, real DB."""

import hashlib
import io
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import demo_counts
import pytest
from pilot_wait import until
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, Static, TabbedContent

from app.app import CraApp
from engine.core.workspace import Workspace
from engine.demo.hostile import edit_manifest, load_manifest_dict
from engine.intake.approval import list_corpus
from engine.intake.validation_cache import validate_cached
from screens.help import HelpScreen
from screens.ingest import IngestScreen
from screens.widgets.confirm import ConfirmScreen
from screens.widgets.reason import ReasonScreen

SIZE = (120, 40)
MINED_STAGES = [
    ("non-merge", 198, 14),
    ("not automated", 181, 17),
    ("message quality", 97, 84),
    ("diff size", 41, 56),
    ("touches python", 30, 11),
    ("not docs/ci/config-only", 27, 3),
    ("tests exist", 5, 22),
]
STYLE_METRICS = {
    "bare_except_ratio": 0.0,
    "blind_except_ratio": 0.05,
    "try_except_pass_count": 1.0,
    "specific_exception_ratio": 0.92,
    "subscript_vs_get_ratio": 0.71,
    "assert_density": 0.8,
    "raise_density": 2.4,
    "exception_chaining_ratio": 0.6,
}
PLAN_ARTIFACTS = [
    ("good", "docs/plans/slugify.md", "implemented as planned, no rework"),
    ("fine", "docs/plans/wordcount.md", "implemented, then 2 small bug-fix commits"),
    ("bad", "docs/plans/truncate.md", "rewritten by a replacement plan 3 commits later"),
]


def add_mining_facts(package: Path) -> None:
    """Fill `package`'s manifest with an attrition table, a style score and plan artifacts.

    These fields describe how the package was mined; the wheels and commits stay as they were,
    so the package stays valid.
    """

    def edit(manifest: dict) -> None:
        shas = [c["sha"] for c in manifest["commits"]]
        manifest["filter_stages"] = [
            {"name": name, "kept": kept, "dropped": dropped} for name, kept, dropped in MINED_STAGES
        ]
        manifest["style"] = {"score": 81.6, "files": 12, "metrics": STYLE_METRICS}
        manifest["plan_artifacts"] = [
            {"path": path, "added_in": sha, "label": label, "reason": reason}
            for (label, path, reason), sha in zip(PLAN_ARTIFACTS, shas, strict=False)
        ]

    edit_manifest(package, edit)


@pytest.fixture
def console_workspace(tmp_path: Path) -> Workspace:
    """A workspace that watches no system mount roots: only the test's drive folder."""
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "cra.toml").write_text("[usb]\nmount_roots = []\n", encoding="utf-8")
    return Workspace.open(root)


@pytest.fixture
def hostile_package(valid_package: Path) -> Path:
    """A copy of the valid package beside it, with a git hook that would run on checkout."""
    dest = valid_package.parent / "textkit-hooked"
    shutil.copytree(valid_package, dest, symlinks=True)
    hook = dest / "repo" / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho owned\n", encoding="utf-8")
    hook.chmod(0o755)
    return dest


async def settled(pilot: Pilot, *packages: Path) -> IngestScreen:
    """Wait until every package in `packages` is listed and validated; return the pane."""
    screen = pilot.app.screen
    assert isinstance(screen, IngestScreen)

    def done() -> bool:
        return all(
            screen.is_listed(p) and screen.package_status(p) != "validating…" for p in packages
        )

    await until(pilot, done, f"validation of {', '.join(p.name for p in packages)}")
    return screen


async def select(pilot: Pilot, screen: IngestScreen, package: Path) -> None:
    """Move the cursor down the packages table until `package` is selected."""
    table = screen.query_one("#packages", DataTable)
    table.focus()
    await pilot.press("ctrl+home")  # to the first row (home only scrolls)
    for _ in range(table.row_count):
        row = screen.selected_package()
        if row is not None and row.key.path == package:
            return
        await pilot.press("down")
    raise AssertionError(f"{package} is not in the packages table")


def rendered(widget: Static) -> str:
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


def report_text(screen: IngestScreen) -> str:
    return rendered(screen.query_one("#report-body", Static))


def head_text(screen: IngestScreen) -> str:
    return rendered(screen.query_one("#report-head", Static))


def mining_text(screen: IngestScreen) -> str:
    return rendered(screen.query_one("#mining-body", Static))


def assert_planning_rows(text: str, package: Path) -> None:
    """The Mining tab lists every planning type with its count and share of the manifest's."""
    mix = Counter(c["planning_type"] for c in load_manifest_dict(package)["commits"])
    total = mix.total()
    assert f"Planning types  of {total} kept commits" in text
    for kind in ("meta_plan", "step_plan", "test_plan", "mixed"):
        share = f"{100 * mix[kind] / total:.1f} %"
        assert re.search(rf"^{kind} +{mix[kind]} +{re.escape(share)}", text, re.M), kind


def colours_of(widget: Static, word: str) -> set[str]:
    """The colours `widget` draws `word` in, wherever it fills a segment (padding aside)."""
    console = Console(width=100, file=io.StringIO())
    return {
        seg.style.color.name
        for seg in console.render(widget.content)
        if seg.text.strip() == word and seg.style is not None and seg.style.color is not None
    }


def notifications(app: CraApp) -> list[tuple[str, str]]:
    return [(n.message, n.severity) for n in app._notifications]


def decisions(ws: Workspace) -> list[dict]:
    return list(ws.db["ingest_decisions"].rows)


async def test_selecting_a_package_shows_its_full_report(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        assert screen.package_status(valid_package) == "OK"
        text = report_text(screen)
        assert "All checks passed." in text
        for check in ("manifest", "file-policy", "git-fsck", "git-safety", "dry-run"):
            assert check in text
        head = head_text(screen)
        kept, total = len(demo_counts.KEPT), demo_counts.COMMITS
        assert f"{kept} commits  6 wheels" in head
        share = f"{100 * kept / total:.1f} %"
        assert f"filter {total} → {kept} ({share}) · style 95/100 · 1 plan artifact" in head

        await pilot.press("enter")
        assert screen.focused is screen.query_one("#report")


@pytest.mark.slow
async def test_approve_asks_then_copies_into_the_corpus(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        corpus = screen.query_one("#corpus", DataTable)
        await until(pilot, lambda: corpus.row_count == 1, "the corpus table to show the package")
        # A notification reaches the app as a message, a moment after the table is redrawn.
        await until(
            pilot,
            lambda: any("approved into" in m for m, _ in notifications(app)),
            "the approval's notification",
        )
        assert screen.package_status(valid_package) == "approved"
        [entry] = list_corpus(console_workspace)
        assert entry.name == "textkit" and entry.present


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["n", "escape"])
async def test_approve_declined_approves_nothing(console_workspace, valid_package, answer):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press(answer)
        assert app.screen is screen
        await pilot.pause()
        assert screen.package_status(valid_package) == "OK"
    assert list_corpus(console_workspace) == []
    assert decisions(console_workspace) == []


@pytest.mark.slow
async def test_reject_records_the_reason(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        await pilot.press("x")
        assert isinstance(app.screen, ReasonScreen)
        await pilot.press("enter")  # a blank reason is refused, the modal stays
        assert isinstance(app.screen, ReasonScreen)
        assert ("A rejection needs a reason.", "warning") in notifications(app)
        app.screen.query_one(Input).value = "license not cleared"
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(
            pilot,
            lambda: screen.package_status(valid_package) == "rejected by operator",
            "the rejection to be recorded",
        )
    [decision] = decisions(console_workspace)
    assert decision["decision"] == "rejected"
    assert decision["reason"] == "license not cleared"
    assert list_corpus(console_workspace) == []


async def test_reject_cancelled_at_the_reason_records_nothing(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        await pilot.press("x", "escape")
        assert app.screen is screen
    assert decisions(console_workspace) == []


async def test_approving_a_rejected_package_is_refused(
    console_workspace, valid_package, hostile_package
):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package, hostile_package)
        await select(pilot, screen, hostile_package)
        assert screen.package_status(hostile_package).startswith("REJECTED")
        assert "repo/.git/hooks/post-checkout" in report_text(screen)
        await pilot.press("a")
        assert app.screen is screen
        [(message, severity)] = notifications(app)
        assert severity == "error"
        label = f"textkit-hooked@{manifest_digest(hostile_package)[:7]} (textkit)"
        assert message.startswith(f"{label}: not approved, 1 failing check:\n")
        assert "\n  git-safety [repo/.git/hooks/post-checkout]: " in message
    assert list_corpus(console_workspace) == []
    assert decisions(console_workspace) == []


def manifest_digest(package: Path) -> str:
    return hashlib.sha256((package / "manifest.json").read_bytes()).hexdigest()


def row_labels(screen: IngestScreen) -> list[str]:
    """The packages table's second column, row by row, as plain text."""
    table = screen.query_one("#packages", DataTable)
    return [table.get_row_at(i)[1].plain for i in range(table.row_count)]


async def test_packages_sharing_a_manifest_name_are_named_by_folder_and_digest(
    console_workspace, valid_package, hostile_package
):
    """Two folders whose manifests both say `textkit`: each row, the heading and the reject
    confirmation name the package by its folder and short digest, the manifest's name after
    it where the folder differs, so the operator rejects the folder they mean."""
    short = manifest_digest(valid_package)[:7]
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package, hostile_package)
        assert row_labels(screen)[1:] == [
            f"  textkit@{short}",
            f"  textkit-hooked@{short}",
        ]
        await select(pilot, screen, hostile_package)
        assert head_text(screen).startswith(f"textkit-hooked@{short} (textkit)   REJECTED")
        await pilot.press("x")
        assert isinstance(app.screen, ReasonScreen)
        app.screen.query_one(Input).value = "a git hook"
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmScreen)
        title = str(app.screen.query_one(".dialog-title", Label).render())
        assert title == f"Reject textkit-hooked@{short} (textkit)?"
        await pilot.press("y")
        await until(
            pilot,
            lambda: any(m.startswith("textkit-hooked@") for m, _ in notifications(app)),
            "the rejection's notification",
        )
        assert (f"textkit-hooked@{short} (textkit): rejected (a git hook)", "information") in (
            notifications(app)
        )
    [decision] = decisions(console_workspace)
    assert decision["source_path"] == str(hostile_package)


@pytest.mark.slow
async def test_a_package_appearing_on_the_drive_is_listed_and_validated(
    console_workspace, valid_package
):
    drive = valid_package.parent
    app = CraApp(console_workspace, [drive])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        late = drive / "late" / "textkit"
        shutil.copytree(valid_package, late, symlinks=True)
        await settled(pilot, late)
        assert screen.package_status(late) == "OK"
        await select(pilot, screen, late)
        await pilot.press("enter")
        shutil.rmtree(late)
        await until(pilot, lambda: not screen.is_listed(late), "the removed package to go")
        assert screen.focused is screen.query_one("#packages")  # its report went with it


async def test_help_lists_pane_and_app_bindings(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(rendered(s) for s in app.screen.query(".help-section").results(Static))
        for description in ("Approve", "Reject", "Revalidate", "Help", "Quit", "Ingest"):
            assert description in text
        await pilot.press("escape")
        assert isinstance(app.screen, IngestScreen)


@pytest.mark.slow
async def test_pane_key_and_palette(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1")
        assert app.current_mode == "ingest"
        assert isinstance(app.screen, IngestScreen)
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        await pilot.press("ctrl+p", *"Ingest: Approve")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the approve modal")
        await pilot.press("escape")
    assert list_corpus(console_workspace) == []


def add_hook(package: Path) -> None:
    """Make `package` hostile in place without touching its manifest (so its cache key holds)."""
    hook = package / "repo" / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho owned\n", encoding="utf-8")


@pytest.mark.slow
async def test_revalidate_replaces_the_cached_report(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        assert screen.package_status(valid_package) == "OK"
        add_hook(valid_package)
        await pilot.pause(0.3)
        assert screen.package_status(valid_package) == "OK"  # cached: same manifest mtime
        await pilot.press("enter", "v")
        await settled(pilot, valid_package)
        assert screen.package_status(valid_package).startswith("REJECTED")
        assert screen.focused is screen.query_one("#report")  # reading on, not lost


@pytest.mark.slow
async def test_engine_refusal_becomes_an_error_notification(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        add_hook(valid_package)  # approval re-validates and must now refuse
        await pilot.press("a", "y")
        await until(pilot, lambda: bool(notifications(app)), "the refusal")
        [(message, severity)] = notifications(app)
        assert severity == "error"
        assert "git-safety" in message and "post-checkout" in message
        assert screen.package_status(valid_package).startswith("REJECTED")  # the fresh report
    assert list_corpus(console_workspace) == []


async def test_q_quits(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_mining_tab_shows_attrition_planning_style_and_plans(
    console_workspace, valid_package
):
    add_mining_facts(valid_package)
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        assert screen.package_status(valid_package) == "OK"
        head = head_text(screen)
        assert "filter 212 → 5 (2.4 %)" in head
        assert "style 82/100" in head and "3 plan artifacts" in head
        tabs = screen.query_one("#report-tabs", TabbedContent)
        assert tabs.active == "checks-tab"

        await pilot.press("m")
        assert tabs.active == "mining-tab"
        assert screen.focused is screen.query_one("#packages")  # browsing keeps its focus
        text = mining_text(screen)
        assert "Commit filter  kept 5 of 212 commits (2.4 %)" in text
        for name, kept, dropped in MINED_STAGES:
            assert re.search(rf"^{re.escape(name)} +{kept} +{dropped}$", text, re.M), name
        assert_planning_rows(text, valid_package)
        assert "Style score  82/100 · strong candidate · 12 Python files" in text
        for metric, value in STYLE_METRICS.items():
            assert re.search(rf"{metric} +{value:g}\b", text), metric
        assert "Plan artifacts  3: 1 good, 1 fine, 1 bad" in text
        for label, path, reason in PLAN_ARTIFACTS:
            assert re.search(rf"^{label} +{re.escape(path)} +[0-9a-f]{{8}} +{reason}", text, re.M)
        body = screen.query_one("#mining-body", Static)
        assert colours_of(body, "good") == {"green"}
        assert colours_of(body, "fine") == {"yellow"}
        assert colours_of(body, "bad") == {"red"}


@pytest.mark.slow
async def test_tab_keys_move_focus_with_the_report_and_pane_keys_still_work(
    console_workspace, valid_package
):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        tabs = screen.query_one("#report-tabs", TabbedContent)
        await pilot.press("m", "enter")
        assert screen.focused is screen.query_one("#mining")
        await pilot.press("c")
        assert tabs.active == "checks-tab"
        assert screen.focused is screen.query_one("#report")
        await pilot.press("m", "a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape", "escape")
        assert screen.focused is screen.query_one("#packages")
        assert tabs.active == "mining-tab"


async def test_empty_mining_sections_say_so(console_workspace, valid_package):
    edit_manifest(
        valid_package, lambda m: m.update(filter_stages=[], style=None, plan_artifacts=[])
    )
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        assert screen.package_status(valid_package) == "OK"
        assert "no attrition table · style not scored · no plan artifacts" in head_text(screen)
        text = mining_text(screen)
        assert "Commit filter  no attrition table in the manifest" in text
        assert "Style score  not scored" in text
        assert "Plan artifacts  none in the manifest" in text
        assert_planning_rows(text, valid_package)


async def test_a_manifest_that_does_not_parse_has_no_mining_facts(console_workspace, valid_package):
    edit_manifest(valid_package, lambda m: m.update(style={"score": 140, "files": 3}))
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        assert screen.package_status(valid_package).startswith("REJECTED")
        assert "style.score" in report_text(screen)
        assert "mining facts unknown: the manifest did not parse" in head_text(screen)
        assert "The manifest did not parse: no mining facts to show." in mining_text(screen)


async def test_a_package_validated_before_is_not_validated_again_at_start(
    console_workspace, valid_package
):
    """The console opening on a drive whose package the workspace has validated before (an
    earlier console, `cra ingest validate`) shows the kept report and validates nothing;
    `v` validates afresh. (The kept report is marked, so the one shown is known to be it.)"""
    validate_cached(console_workspace, valid_package)
    [(kept,)] = console_workspace.db.execute("SELECT report_json FROM validation_reports")
    marked = json.loads(kept)
    marked["summary"]["name"] = "kept-report"
    with console_workspace.db.conn:
        console_workspace.db.execute(
            "UPDATE validation_reports SET report_json = ?, validated_at = ?",
            [json.dumps(marked), "2000-01-01T00:00:00Z"],
        )

    def validated_at() -> list[str]:
        rows = console_workspace.db.execute("SELECT validated_at FROM validation_reports")
        return [row[0] for row in rows]

    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        assert screen.package_status(valid_package) == "OK"
        assert "kept-report" in head_text(screen)
        assert validated_at() == ["2000-01-01T00:00:00Z"]
        await pilot.press("v")
        await until(pilot, lambda: validated_at() != ["2000-01-01T00:00:00Z"], "a fresh one")
        await settled(pilot, valid_package)
        assert "kept-report" not in head_text(screen)
