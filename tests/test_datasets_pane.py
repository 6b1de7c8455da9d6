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
    with ws.db.conn:
        return int(
            ws.db["review_rounds"]
            .insert(
                {"stage": stage, "requested": 15, "seed": 7, "drawn_at": "2026-05-01T08:00:00Z"}
            )
            .last_pk
        )


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


def pane(pilot: Pilot) -> DatasetsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, DatasetsScreen)
    return screen


async def settled(pilot: Pilot, ids: list[str], selected: str) -> DatasetsScreen:
    """Wait until the poll shows `ids`, `selected` is highlighted with its detail and the plan
    is drawn."""
    screen = pane(pilot)

    def ready() -> bool:
        return (
            screen.dataset_ids == ids
            and screen.audit_report is not None
            and screen.selected_dataset == selected
            and f"Dataset {selected} " in str(screen.query_one("#detail-box").border_title)
            and "Plan" in text_of(screen, "#plan")
        )

    await until(pilot, ready, f"datasets {ids} with {selected} highlighted")
    await pilot.pause()
    return screen


async def test_highlighting_a_dataset_shows_its_manifest(ws: Workspace) -> None:
    fill(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, ["scope-d2", "execute_code-d1", "scope-d1"], "scope-d2")
        table = screen.query_one("#datasets", DataTable)
        assert table.has_focus
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


async def test_the_plan_lists_its_weak_stages_largest_gap_first(ws: Workspace) -> None:
    fill(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, ["scope-d2", "execute_code-d1", "scope-d1"], "scope-d2")
        plan = text_of(screen, "#plan")
        assert "Plan 1 · 2026-05-01 07:30 by night-shift" in plan
        lines = [line.split() for line in plan.splitlines()[1:] if line.strip()]
        # resolved 0.25 vs the base model's 0.75 (gap 0.50) on the outcome stages; then scope
        # (0.85 − 0.5) and task_analysis (0.80 − 0.5).
        assert [line[1] for line in lines] == [
            "planning_dpo",
            "execute_code",
            "scope",
            "task_analysis",
        ]
        assert lines[1][2:4] == ["SFT", "r32"]
        assert "relevant_recall 0.50 → 0.85 (gap 0.35)" in plan


async def test_a_dataset_recorded_later_appears_on_a_poll(ws: Workspace) -> None:
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = pane(pilot)
        await until(pilot, lambda: "No training plan yet" in text_of(screen, "#plan"), "plan")
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
        assert "Plan 1" not in text_of(pane(pilot), "#plan")


def test_datasets_with_a_plan(snap_compare, ws: Workspace) -> None:
    fill(ws)

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, ["scope-d2", "execute_code-d1", "scope-d1"], "scope-d2")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)


def test_datasets_second_one_highlighted(snap_compare, ws: Workspace) -> None:
    fill(ws)

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, ["scope-d2", "execute_code-d1", "scope-d1"], "scope-d2")
        await pilot.press("down")
        await settled(pilot, ["scope-d2", "execute_code-d1", "scope-d1"], "execute_code-d1")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)


def test_datasets_empty_workspace(snap_compare, ws: Workspace) -> None:
    async def run_before(pilot: Pilot) -> None:
        screen = pane(pilot)
        await until(pilot, lambda: "No training plan yet" in text_of(screen, "#plan"), "plan")
        await until(pilot, lambda: "No examples yet" in text_of(screen, "#audit"), "audit")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)


async def test_c_curates_what_the_spot_check_allows_after_asking(ws: Workspace) -> None:
    from test_training_runs import _item

    from engine.training_data.review import decide, draw_sample
    from engine.training_data.store import add_items
    from screens.widgets.confirm import ConfirmScreen

    (ws.root / "cra.toml").write_text("[curation]\nmax_domain_share = 1.0\n", encoding="utf-8")
    ws = Workspace.open(ws.root)
    add_items(ws.db, [_item(n) for n in range(30)])
    round_id = draw_sample(ws, "scope", 15, seed=3)
    for position in range(1, 16):
        decide(ws, round_id, position, "accept")
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = pane(pilot)
        await until(pilot, lambda: "No dataset yet" in text_of(screen, "#detail"), "no dataset")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")
        await pilot.press("n")
        await pilot.pause(0.2)
        assert ws.db["datasets"].count == 0
        await pilot.press("c")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await settled_ids(pilot, screen, ["scope-d1"])
        messages = [note.message for note in pilot.app._notifications]
        assert "Curated scope-d1." in messages
