"""The Datasets pane over a real workspace: datasets recorded with valid manifests, a training
plan saved from real attempt rows; driven by Pilot in a small app that shows only this pane.

Snapshots are taken at a fixed size once the poll has shown every dataset, the plan and the
highlighted dataset's detail; every timestamp is fixed. Regenerate with
`pytest tests/test_datasets_pane.py --snapshot-update`, then read the SVGs' text.
"""

import hashlib
import io
from pathlib import Path

import pytest
from pilot_wait import until
from rich.console import Console
from test_data_audit import SCOPE_OK, scope_item
from test_train_plan import attempts
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from engine.core.workspace import Workspace
from engine.training_data.dataset_manifest import (
    Counts,
    DatasetManifest,
    FileRecord,
    Replay,
    ReviewRecord,
    Split,
)
from engine.training_data.items import Message, TrainingItem
from engine.training_data.plans import save_plan
from engine.training_data.store import add_items
from engine.training_data.train_plan import build_plan
from screens.datasets import DatasetsScreen

SIZE = (120, 40)


class PaneApp(App[None]):
    """Just the Datasets pane over `workspace`."""

    TITLE = "cra console"

    def __init__(self, workspace: Workspace) -> None:
        super().__init__()
        self.workspace = workspace

    def on_mount(self) -> None:
        self.push_screen(DatasetsScreen(self.workspace))


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "cra.toml").write_text(
        '[harness.openai]\nmodel = "qwen3-4b"\n[training_data]\nplan_min_samples = 4\n',
        encoding="utf-8",
    )
    return Workspace.open(root)


def review_round(ws: Workspace, stage: str) -> int:
    """A spot-check round of 15 new SFT items of `stage`, all decided, 2 of them rejected."""
    first = ws.db.execute("SELECT COUNT(*) FROM examples").fetchone()[0]
    items = [
        TrainingItem(
            stage=stage,
            kind="sft",
            source="synthetic",
            origin="commit",
            repo="attrs",
            domain="text",
            task_key=f"reviewed-{first + n}",
            task_date="2026-04-01T00:00:00Z",
            prompt=[Message(role="user", content=f"{stage} question {first + n}")],
            chosen=[Message(role="assistant", content=f"{stage} answer {first + n}")],
        )
        for n in range(15)
    ]
    add_items(ws.db, items)
    ids = [
        row[0]
        for row in ws.db.execute(
            "SELECT id FROM examples WHERE task_key LIKE 'reviewed-%' ORDER BY id DESC LIMIT 15"
        )
    ]
    with ws.db.conn:
        round_id = int(
            ws.db["review_rounds"]
            .insert(
                {"stage": stage, "requested": 15, "seed": 7, "drawn_at": "2026-05-01T08:00:00Z"}
            )
            .last_pk
        )
        ws.db["review_items"].insert_all(
            {
                "round_id": round_id,
                "position": position,
                "example_id": example_id,
                "decision": "reject" if position <= 2 else "accept",
                "decided_at": "2026-05-01T08:30:00Z",
                "decided_by": "night-shift",
            }
            for position, example_id in enumerate(sorted(ids), 1)
        )
    return round_id


def file_record(name: str, rows: int, size: int) -> FileRecord:
    return FileRecord(sha256=hashlib.sha256(name.encode()).hexdigest(), rows=rows, bytes=size)


def manifest(
    ws: Workspace,
    dataset_id: str,
    stage: str,
    created_at: str,
    *,
    plan_id: int | None = None,
    cutoff: str = "2026-04-20T00:00:00Z",
    eval_repos: tuple[str, ...] = ("structlog",),
    parents: tuple[str, ...] = (),
    train_sources: dict[str, int] | None = None,
) -> DatasetManifest:
    preference = stage == "planning_dpo"
    return DatasetManifest(
        id=dataset_id,
        stage=stage,
        base_model="coding" if stage == "execute_code" else "reasoning",
        format="preference" if preference else "sft",
        created_at=created_at,
        created_by="night-shift",
        plan_id=plan_id,
        review=ReviewRecord(round_id=review_round(ws, stage), reviewed=15, rejected=2, flipped=1),
        files={
            "train.jsonl": file_record(f"{dataset_id}/train", 900, 1_234_567),
            "eval.jsonl": file_record(f"{dataset_id}/eval", 64, 88_000),
            "lineage.jsonl": file_record(f"{dataset_id}/lineage", 964, 190_000),
        },
        counts=Counts(
            candidates=1100,
            excluded_by_review=2,
            flipped_by_review=1,
            exact_duplicates=30,
            near_duplicates=12,
            dropped_for_balance=92,
            train=900,
            eval=64,
            replay=120,
        ),
        sources={
            "train": train_sources or {"synthetic": 700, "harness": 150, "logged": 50},
            "eval": {"synthetic": 60, "harness": 4},
        },
        domains={"train": {"text": 400, "web": 300, "cli": 200}, "eval": {"data": 64}},
        split=Split(
            eval_share=0.1,
            cutoff=cutoff,
            eval_repos=list(eval_repos),
            train_tasks=180,
            eval_tasks=20,
        ),
        replay=Replay(target_share=0.15, share=120 / 900, parents=list(parents)),
        near_duplicate_threshold=0.9,
        max_domain_share=0.2,
        seed=0,
    )


def record(ws: Workspace, found: DatasetManifest) -> None:
    text = found.model_dump_json(indent=2)
    with ws.db.conn:
        ws.db["datasets"].insert(
            {
                "id": found.id,
                "stage": found.stage,
                "base_model": found.base_model,
                "format": found.format,
                "path": f"datasets/{found.id}",
                "created_at": found.created_at,
                "created_by": found.created_by,
                "plan_id": found.plan_id,
                "review_round_id": found.review.round_id,
                "train_count": found.counts.train,
                "eval_count": found.counts.eval,
                "replay_count": found.counts.replay,
                "manifest_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "manifest_json": text,
            }
        )


def weak_plan(ws: Workspace) -> int:
    """A plan saved at a fixed time: scope and task_analysis weak, execute_code below base."""
    attempts(ws, "qwen3-4b", ["resolved"] * 3 + ["failed"], file_recall=0.9, file_precision=0.9)
    attempts(ws, "scope-v1", ["resolved"] + ["failed"] * 3, file_recall=0.5, file_precision=0.9)
    plan = build_plan(ws, "2026-05-01T07:30:00Z", "night-shift")
    return save_plan(ws, plan)[0]


def examples(ws: Workspace, count: int = 10, degenerate: int = 2) -> None:
    """`count` scope items, the first `degenerate` of them with nothing to change."""
    items = [
        scope_item(n, {**SCOPE_OK, "relevant": [] if n < degenerate else [f"m{n}.py"]})
        for n in range(count)
    ]
    add_items(ws.db, items)


def fill(ws: Workspace) -> None:
    plan_id = weak_plan(ws)
    examples(ws)
    record(ws, manifest(ws, "scope-d1", "scope", "2026-04-28T21:00:00Z"))
    record(
        ws,
        manifest(
            ws,
            "scope-d2",
            "scope",
            "2026-05-02T09:15:00Z",
            plan_id=plan_id,
            cutoff="2026-04-25T00:00:00Z",
            eval_repos=("attrs", "svcs"),
            parents=("scope-d1",),
        ),
    )
    record(
        ws,
        manifest(
            ws,
            "execute_code-d1",
            "execute_code",
            "2026-05-01T22:40:00Z",
            plan_id=plan_id,
            train_sources={"harness": 120, "synthetic": 780},
        ),
    )


def text_of(screen: DatasetsScreen, selector: str) -> str:
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(screen.query_one(selector, Static).content)
    return console.export_text()


def no_plan(screen: DatasetsScreen) -> bool:
    """The stages box says there is no training plan."""
    return "no training plan yet" in str(screen.query_one("#stages-box").border_title)


def pane(pilot: Pilot) -> DatasetsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, DatasetsScreen)
    return screen


async def settled(pilot: Pilot, ids: list[str], selected: str) -> DatasetsScreen:
    """Wait until the poll shows `ids`, `selected` is highlighted with its detail and the
    stages are drawn with the plan."""
    screen = pane(pilot)

    def ready() -> bool:
        return (
            screen.dataset_ids == ids
            and screen.audit_report is not None
            and screen.selected_dataset == selected
            and f"Dataset {selected} " in str(screen.query_one("#detail-box").border_title)
            and bool(screen.outlook)
            and "Stages · plan" in str(screen.query_one("#stages-box").border_title)
        )

    await until(pilot, ready, f"datasets {ids} with {selected} highlighted")
    await pilot.pause()
    return screen


async def test_highlighting_a_dataset_shows_its_manifest(ws: Workspace) -> None:
    fill(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, ["scope-d2", "execute_code-d1", "scope-d1"], "scope-d2")
        assert screen.query_one("#stages", DataTable).has_focus
        table = screen.query_one("#datasets", DataTable)
        table.focus()
        row = [str(cell) for cell in table.get_row("scope-d2")]
        assert row == [
            "scope-d2",
            "scope",
            "reasoning",
            "sft",
            "2026-05-02",
            "900",
            "64",
            "13.3%",
            "#2 2/15",
            "#1",
            "syn 700 har 150 log 50",
        ]
        assert str(table.get_row("scope-d1")[-2]) == "—"
        detail = text_of(screen, "#detail")
        assert "cutoff 2026-04-25T00:00:00Z" in detail
        assert "eval-only repos: attrs, svcs" in detail
        assert "parents: scope-d1" in detail
        assert "train: synthetic 700, harness 150, logged 50" in detail
        assert "train: text 400, web 300, cli 200" in detail
        assert hashlib.sha256(b"scope-d2/train").hexdigest() in detail

        await pilot.press("down", "down")
        await until(pilot, lambda: screen.selected_dataset == "scope-d1", "scope-d1 highlighted")
        detail = text_of(screen, "#detail")
        assert "cutoff 2026-04-20T00:00:00Z" in detail
        assert "eval-only repos: structlog" in detail
        assert hashlib.sha256(b"scope-d1/train").hexdigest() in detail
        assert "scope-d2/train" not in detail
        assert screen.query_one("#detail-box").border_title == (
            "Dataset scope-d1 · scope · reasoning base · sft"
        )


async def test_the_stages_say_their_place_in_the_plan_and_whether_they_may_be_curated(
    ws: Workspace,
) -> None:
    """A row per LoRA stage: its items, those in no dataset yet, its place in the plan
    (largest gap first) and whether it may be curated, else why not; the highlighted stage's
    expected improvement and reason in full below."""
    fill(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, ["scope-d2", "execute_code-d1", "scope-d1"], "scope-d2")
        assert screen.query_one("#stages-box").border_title == (
            "Stages · plan 1 · 2026-05-01 07:30 by night-shift · 4 weak stages, numbered "
            "largest gap first"
        )
        table = screen.query_one("#stages", DataTable)
        rows = {str(key.value): [str(cell) for cell in table.get_row(key)] for key in table.rows}
        assert list(rows) == ["task_analysis", "scope", "precision", "planning_dpo", "execute_code"]
        # resolved 0.25 vs the base model's 0.75 (gap 0.50) on the outcome stages; then scope
        # (0.85 − 0.5) and task_analysis (0.80 − 0.5).
        assert [rows[stage][4] for stage in rows] == [
            "4. SFT r16",
            "3. SFT r16",
            "—",
            "1. DPO r16",
            "2. SFT r32",
        ]
        assert rows["scope"][:4] == ["scope", "sft", "40", "40"]
        assert rows["scope"][5].startswith("✗ round 2 of scope was the spot-check of dataset")
        assert rows["precision"][5].startswith("✗ no sft items of precision yet")
        assert screen.selected_stage == "task_analysis", "no stage is ready: the first"

        await pilot.press("down")
        await until(pilot, lambda: screen.selected_stage == "scope", "scope highlighted")
        line = text_of(screen, "#stage-line")
        assert "plan 1 #3: relevant_recall 0.50 → 0.85 (gap 0.35)" in line
        assert (
            "✗ round 2 of scope was the spot-check of dataset scope-d2: draw a new sample for "
            "this round of training" in " ".join(line.split())
        )


async def test_a_dataset_recorded_later_appears_on_a_poll(ws: Workspace) -> None:
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = pane(pilot)
        await until(pilot, lambda: no_plan(screen), "plan")
        assert "No dataset yet" in text_of(screen, "#detail")
        record(ws, manifest(ws, "scope-d1", "scope", "2026-04-28T21:00:00Z"))
        await pilot.press("r")
        await settled_ids(pilot, screen, ["scope-d1"])
        record(ws, manifest(ws, "scope-d2", "scope", "2026-05-02T09:15:00Z"))
        await settled_ids(pilot, screen, ["scope-d2", "scope-d1"])
        assert screen.selected_dataset == "scope-d1"
        assert "cutoff 2026-04-20T00:00:00Z" in text_of(screen, "#detail")


@pytest.mark.slow
async def test_the_audit_shows_each_stage_and_follows_new_items(ws: Workspace) -> None:
    """Each stage's items, degenerate share and the rules broken; items added later are
    audited on the next poll, and only then."""
    examples(ws, count=10, degenerate=2)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = pane(pilot)
        await until(pilot, lambda: screen.audit_report is not None, "the audit")
        shown = text_of(screen, "#audit")
        row = next(line for line in shown.splitlines() if line.split()[:1] == ["scope"])
        assert row.split()[:4] == ["scope", "10", "2", "20.0%"]
        assert "scope_nothing_to_change 2" in row
        assert screen.query_one("#audit-box").border_title == (
            "Audit · 10 items · curation refuses above 5.0% degenerate"
        )
        first = screen.audit_report
        await pilot.press("r")
        await pilot.pause(0.5)
        assert screen.audit_report is not first, "`r` audits again"
        again = screen.audit_report
        await pilot.pause(2.5)
        assert screen.audit_report is again, "a poll with no new items does not re-audit"
        add_items(ws.db, [scope_item(n, {**SCOPE_OK, "relevant": []}) for n in (10, 11)])

        def updated() -> bool:
            report = screen.audit_report
            return report is not None and report.stages[0].items == 12

        await until(pilot, updated, "the new items audited")
        shown = text_of(screen, "#audit")
        row = next(line for line in shown.splitlines() if line.split()[:1] == ["scope"])
        assert row.split()[:4] == ["scope", "12", "4", "33.3%"]


async def settled_ids(pilot: Pilot, screen: DatasetsScreen, ids: list[str]) -> None:
    await until(pilot, lambda: screen.dataset_ids == ids, f"datasets {ids}")


async def test_a_plan_file_edited_since_is_reported_not_shown(ws: Workspace) -> None:
    weak_plan(ws)
    (ws.plans_dir / "plan-1.json").write_text("{}", encoding="utf-8")
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        app = pilot.app

        def reported() -> bool:
            return any("differs from training plan 1" in n.message for n in app._notifications)

        await until(pilot, reported, "the plan's error")
        assert pane(pilot).query_one("#stages-box").border_title == (
            "Stages · the newest training plan could not be read"
        )


def test_datasets_with_a_plan(snap_compare, ws: Workspace) -> None:
    fill(ws)

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, ["scope-d2", "execute_code-d1", "scope-d1"], "scope-d2")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)


def test_datasets_second_one_highlighted(snap_compare, ws: Workspace) -> None:
    fill(ws)

    async def run_before(pilot: Pilot) -> None:
        screen = await settled(pilot, ["scope-d2", "execute_code-d1", "scope-d1"], "scope-d2")
        screen.query_one("#datasets", DataTable).focus()
        await pilot.press("down")
        await settled(pilot, ["scope-d2", "execute_code-d1", "scope-d1"], "execute_code-d1")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)


def test_datasets_empty_workspace(snap_compare, ws: Workspace) -> None:
    async def run_before(pilot: Pilot) -> None:
        screen = pane(pilot)
        await until(pilot, lambda: no_plan(screen) and bool(screen.outlook), "stages")
        await until(pilot, lambda: "No examples yet" in text_of(screen, "#audit"), "audit")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)


def analysis_item(n: int) -> TrainingItem:
    """Item `n` of `test_training_runs`, of task_analysis."""
    from test_training_runs import _item

    return _item(n).model_copy(update={"stage": "task_analysis"})


def ready_stages(ws: Workspace, config: str = "[curation]\nmax_domain_share = 1.0\n") -> Workspace:
    """scope and task_analysis with 30 items each and a fully accepted spot-check round."""
    from test_training_runs import _item

    from engine.training_data.review import decide, draw_sample

    (ws.root / "cra.toml").write_text(config, encoding="utf-8")
    ws = Workspace.open(ws.root)
    add_items(ws.db, [_item(n) for n in range(30)] + [analysis_item(n) for n in range(30, 60)])
    for stage in ("scope", "task_analysis"):
        round_id = draw_sample(ws, stage, 15, seed=3)
        for position in range(1, 16):
            decide(ws, round_id, position, "accept")
    return ws


def shown(pilot: Pilot) -> set[str]:
    """The notifications on screen now, by identity."""
    return {note.identity for note in pilot.app._notifications}


def since(pilot: Pilot, before: set[str]) -> list[str]:
    """The messages of the notifications shown since `before`."""
    return [n.message for n in pilot.app._notifications if n.identity not in before]


async def asked(pilot: Pilot) -> str:
    """Wait for the confirmation; its title and body."""
    from screens.widgets.confirm import ConfirmScreen

    await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")
    dialog = pilot.app.screen
    return " ".join(
        str(dialog.query_one(selector, Static).content)
        for selector in (".dialog-title", ".dialog-body")
    )


def datasets_made(ws: Workspace) -> list[str]:
    return [row[0] for row in ws.db.execute("SELECT id FROM datasets ORDER BY rowid")]


async def test_c_curates_the_highlighted_stage_alone_with_one_notification(
    ws: Workspace,
) -> None:
    """Two stages may be curated; `c` on scope asks, naming it, then makes scope's dataset
    alone and says so in exactly one notification; `n` makes nothing."""
    ws = ready_stages(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = pane(pilot)
        await until(pilot, lambda: len(screen.outlook) == 5, "the stages")
        assert [o.stage for o in screen.outlook if o.ready] == ["task_analysis", "scope"]
        assert screen.selected_stage == "task_analysis", "the first ready stage"
        await pilot.press("down")
        await until(pilot, lambda: screen.selected_stage == "scope", "scope highlighted")

        await pilot.press("c")
        question = await asked(pilot)
        assert question.startswith("Curate scope? Curate a dataset of scope (sft) from its 30 ")
        assert "`cra curate-data --stage scope`" in question
        await pilot.press("n")
        await pilot.pause(0.2)
        assert datasets_made(ws) == []

        before = shown(pilot)
        await pilot.press("c")
        await asked(pilot)
        await pilot.press("y")
        await settled_ids(pilot, screen, ["scope-d1"])
        await pilot.pause(0.2)
        assert datasets_made(ws) == ["scope-d1"]
        (new,) = since(pilot, before)
        assert new.startswith("curated scope-d1 (") and new.endswith(" eval rows)")
        assert screen.selected_dataset == "scope-d1"

        def scope_blocked() -> bool:
            return any(o.stage == "scope" and not o.ready for o in screen.outlook)

        await until(pilot, scope_blocked, "scope's round used")
        before = shown(pilot)
        await pilot.press("c")
        await pilot.pause(0.2)
        assert isinstance(pilot.app.screen, DatasetsScreen), "refused without asking"
        (refusal,) = since(pilot, before)
        assert refusal.startswith(
            "scope (sft) cannot be curated: round 1 of scope was the spot-check of dataset scope-d1"
        )
        assert datasets_made(ws) == ["scope-d1"]


async def test_shift_c_curates_every_ready_stage_with_one_summary(ws: Workspace) -> None:
    """`C` asks, naming the stages that may be curated, then curates every stage as
    `cra curate-data` does and sums it up in one notification: the datasets made and the
    stages blocked; with none ready it says so without asking."""
    ws = ready_stages(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = pane(pilot)
        await until(pilot, lambda: len(screen.outlook) == 5, "the stages")
        await pilot.press("C")
        question = await asked(pilot)
        assert "now task_analysis (sft), scope (sft)." in question
        before = shown(pilot)
        await pilot.press("y")
        made = ["scope-d1", "task_analysis-d1"]
        await until(pilot, lambda: sorted(screen.dataset_ids) == made, f"datasets {made}")
        await pilot.pause(0.2)
        (summary,) = since(pilot, before)
        assert summary.startswith("curated task_analysis-d1 (")
        assert ", scope-d1 (" in summary and "blocked" not in summary

        await until(pilot, lambda: not any(o.ready for o in screen.outlook), "both rounds used")
        before = shown(pilot)
        await pilot.press("C")
        await pilot.pause(0.2)
        (refusal,) = since(pilot, before)
        assert refusal == "No stage may be curated now; the stages list says why."


async def test_a_stage_curation_refuses_keeps_its_reason_in_the_stages_list(
    ws: Workspace,
) -> None:
    """A stage the gate lets through but curation refuses (too few domains for the cap)
    is notified once with the reason, and the stages list shows the refusal until the
    stage changes."""
    ws = ready_stages(ws, config="[curation]\nmax_domain_share = 0.1\n")
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = pane(pilot)
        await until(pilot, lambda: len(screen.outlook) == 5, "the stages")
        before = shown(pilot)
        await pilot.press("c")
        await asked(pilot)
        await pilot.press("y")
        await until(pilot, lambda: bool(since(pilot, before)), "the answer")
        await pilot.pause(0.2)
        (refusal,) = since(pilot, before)
        assert refusal.startswith("task_analysis (sft) not curated: ")
        reason = refusal.removeprefix("task_analysis (sft) not curated: ")
        table = screen.query_one("#stages", DataTable)
        assert str(table.get_row("task_analysis")[5]).startswith("✗ refused: ")
        line = " ".join(text_of(screen, "#stage-line").split())
        assert f"✗ refused: {' '.join(reason.split())}" in line

        add_items(ws.db, [analysis_item(n) for n in range(60, 62)])
        await until(
            pilot,
            lambda: not str(table.get_row("task_analysis")[5]).startswith("✗ refused"),
            "the refusal dropped once the stage changed",
        )


async def test_the_palette_curates_the_stage_or_every_stage(ws: Workspace) -> None:
    """In the console, the command palette runs both curations by name: "Datasets: Curate
    all" asks about every ready stage, "Datasets: Curate stage" about the highlighted one."""
    from app.app import CraApp

    ws = ready_stages(ws)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, DatasetsScreen)
        await until(pilot, lambda: len(screen.outlook) == 5, "the stages")
        await pilot.press("ctrl+p", *"Datasets: Curate all")
        await pilot.pause()
        await pilot.press("enter")
        assert "now task_analysis (sft), scope (sft)." in await asked(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "the pane again")
        await pilot.press("ctrl+p", *"Datasets: Curate stage")
        await pilot.pause()
        await pilot.press("enter")
        assert (await asked(pilot)).startswith("Curate task_analysis? ")
        await pilot.press("escape")
    assert datasets_made(ws) == []


def test_datasets_two_stages_ready_to_curate(snap_compare, ws: Workspace) -> None:
    ws = ready_stages(ws)

    async def run_before(pilot: Pilot) -> None:
        screen = pane(pilot)
        await until(pilot, lambda: len(screen.outlook) == 5, "the stages")
        await until(pilot, lambda: screen.audit_report is not None, "the audit")
        await pilot.press("down")
        await until(pilot, lambda: screen.selected_stage == "scope", "scope highlighted")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)
