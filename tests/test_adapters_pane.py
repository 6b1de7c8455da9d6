"""The Adapters pane over a real workspace, driven by Pilot in the real app (key 6): versions
with their gate and metric deltas, promote and roll back behind confirmations, refusals as
notifications, the serving status against a local server speaking vLLM's endpoints, snapshots.

Versions, eval runs, gate decisions and activation records are rows written here with fixed
timestamps, so the snapshots are stable. Snapshots are 140 × 40; regenerate with
`pytest tests/test_adapters_pane.py --snapshot-update`, then read the SVGs' text.
"""

from pathlib import Path

import pytest
from eval_fixtures import add_eval, add_version, examples
from evidence_fixtures import scored_candidate
from fake_vllm import FakeVllm
from held_evals import served_eval
from pilot_wait import until, wait_for
from tables import cut_cells
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.data_table import CellDoesNotExist

from app.app import CraApp
from engine.adapters.activation import AdapterVersion, history, resolve
from engine.bases.registry import register_base
from engine.core.stages import LORA_STAGES
from engine.core.workspace import Workspace
from engine.evaluation.example_scores import paired_metrics
from engine.evaluation.runs import eval_row, start_eval
from engine.promotion.switch import promote_version
from screens.adapter_differences import DifferencesScreen
from screens.adapters import AdaptersScreen
from screens.widgets.confirm import ConfirmScreen
from screens.widgets.reason import ReasonScreen
from screens.widgets.text_modal import TextScreen

SIZE = (140, 40)
STAGE = "scope"
AT = "2026-11-21T07:30:00Z"


def _open(root: Path, port: int) -> Workspace:
    (root / "models/reasoning").mkdir(parents=True, exist_ok=True)
    (root / "models/reasoning" / "config.json").write_text("{}")
    (root / "cra.toml").write_text(
        f'[usb]\nmount_roots = []\n[serving]\nbase_url = "http://127.0.0.1:{port}"\n'
        'timeout_s = 2\n[serving.bases]\nreasoning = "models/reasoning"\n',
        encoding="utf-8",
    )
    ws = Workspace.open(root)
    register_base(ws, "reasoning")
    return ws


def _gate(ws: Workspace, version: AdapterVersion, baseline: str, decision: str = "pass") -> None:
    ws.db["gate_decisions"].insert(
        {
            "adapter_id": version.id,
            "stage": STAGE,
            "baseline": baseline,
            "decision": decision,
            "reasons_json": "[]",
            "at": AT,
            "operator": "ana",
        }
    )


def fill(ws: Workspace) -> None:
    """scope-v1 active (promoted over the base), v2 a candidate that passed against v1, v3
    rejected by the gate; each evaluated on the same eval set."""
    ws.db["datasets"].insert(
        {
            "id": "scope-d1",
            "stage": STAGE,
            "base_model": "reasoning",
            "format": "sft",
            "path": "datasets/scope-d1",
            "created_at": AT,
            "manifest_sha256": "0" * 64,
        }
    )
    v1, v2, v3 = (add_version(ws, STAGE, n, dataset_id="scope-d1") for n in (1, 2, 3))
    add_eval(ws, STAGE, None, examples(20, accuracy=0.5, relevant_recall=0.6, valid_rate=0.9))
    add_eval(ws, STAGE, v1, examples(20, accuracy=0.6, relevant_recall=0.7, valid_rate=1.0))
    add_eval(ws, STAGE, v2, examples(20, accuracy=0.65, relevant_recall=0.7, valid_rate=1.0))
    add_eval(ws, STAGE, v3, examples(20, accuracy=0.4, relevant_recall=0.7, valid_rate=1.0))
    _gate(ws, v1, "base")
    _gate(ws, v2, "scope-v1")
    _gate(ws, v3, "scope-v1", "reject")
    ws.db.execute("UPDATE adapter_versions SET status = 'active' WHERE name = 'scope-v1'")
    ws.db.execute("UPDATE adapter_versions SET status = 'rejected' WHERE name = 'scope-v3'")
    for action, to_id, reason in (
        ("promote", v1.id, "beats the base"),
        ("reject", None, "eval gate: accuracy fell from 0.600 to 0.400"),
    ):
        ws.db["adapter_activations"].insert(
            {
                "stage": STAGE,
                "action": action,
                "from_id": v3.id if action == "reject" else None,
                "to_id": to_id,
                "operator": "ana",
                "at": AT,
                "reason": reason,
                "metrics_json": "{}",
            }
        )


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """Served at port 1, where nothing listens: the server is "not running", and the port in
    the snapshots never changes."""
    return _open(tmp_path / "ws", 1)


def pane(pilot: Pilot) -> AdaptersScreen:
    screen = pilot.app.screen
    assert isinstance(screen, AdaptersScreen)
    return screen


def cell_texts(screen: AdaptersScreen, table: str) -> list[str]:
    widget = screen.query_one(table, DataTable)
    return [
        " | ".join(str(cell) for cell in widget.get_row_at(row)) for row in range(widget.row_count)
    ]


def serving_shown(screen: AdaptersScreen) -> str:
    return str(screen.query_one("#serving", Static).render())


def notes(pilot: Pilot) -> list[str]:
    return [note.message for note in pilot.app._notifications]


async def on_second_stage(pilot: Pilot) -> AdaptersScreen:
    """The Adapters pane with its stages listed and the cursor moved to the second, scope."""
    await pilot.press("6")
    screen = pane(pilot)
    await until(
        pilot,
        lambda: screen.query_one("#stages", DataTable).row_count == len(LORA_STAGES),
        "stages",
    )
    await pilot.press("down")
    return screen


async def on_scope(pilot: Pilot) -> AdaptersScreen:
    screen = await on_second_stage(pilot)
    await until(pilot, lambda: screen.selected_stage == STAGE, "the scope stage")
    await until(pilot, lambda: len(cell_texts(screen, "#versions")) == 3, "scope's versions")
    return screen


async def test_versions_show_their_gate_and_metric_deltas(ws: Workspace) -> None:
    fill(ws)
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        screen = await on_scope(pilot)
        rows = cell_texts(screen, "#versions")
        assert rows[0].startswith("scope-v3 | rejected | reasoning")
        assert "pass vs scope-v1" in rows[1]
        assert "accuracy 0.650 (+0.050) · relevant_recall 0.700 (+0.000)" in rows[1]
        assert "accuracy 0.600 · relevant_recall 0.700" in rows[2]
        history_rows = cell_texts(screen, "#history")
        assert history_rows[0].startswith("2026-11-21 07:30 | reject | scope-v3 | ana")
        await until(pilot, lambda: "not running" in serving_shown(screen), "serving status")
        assert "active, not loaded: scope-v1" in serving_shown(screen)


@pytest.mark.slow
async def test_promote_confirms_with_the_deltas_then_switches(ws: Workspace) -> None:
    fill(ws)
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        screen = await on_scope(pilot)
        await pilot.press("tab", "down")
        assert screen.selected_version == "scope-v2"
        await pilot.press("p")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")
        body = str(pilot.app.screen.query_one(".dialog-body", Static).render())
        assert "scope-v2 will serve scope in place of scope-v1." in body
        assert "* accuracy          0.650  vs  0.600  (+0.050)" in body
        await pilot.press("n")
        await pilot.pause(0.3)
        assert resolve(ws, STAGE) == "scope-v1"

        await pilot.press("p")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await until(pilot, lambda: any("scope-v2 serves now" in n for n in notes(pilot)), "note")
        assert any("no server is running" in n for n in notes(pilot))
        assert any(
            "Watch: none: the harness's planner slot does not call scope" in n for n in notes(pilot)
        )
        assert resolve(ws, STAGE) == "scope-v2"
        await until(pilot, lambda: "scope-v2 | active" in cell_texts(screen, "#versions")[1], "row")

        await pilot.press("r")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")
        body = str(pilot.app.screen.query_one(".dialog-body", Static).render())
        assert "scope goes back from scope-v2 to scope-v1" in body
        await pilot.press("y")
        await until(pilot, lambda: resolve(ws, STAGE) == "scope-v1", "the rollback")
        assert [h.action for h in history(ws, STAGE)][-2:] == ["promote", "rollback"]


async def test_a_promotion_elsewhere_shows_the_new_name_whole(ws: Workspace) -> None:
    """Every stage on its base, then scope-v1 promoted by another process: the Serving cell
    grows from `base` to `scope-v1` in place and reads whole, not cut to the old width."""
    fill(ws)
    with ws.db.conn:
        ws.db.execute("UPDATE adapter_versions SET status = 'inactive' WHERE name = 'scope-v1'")
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        await promote_elsewhere(pilot, ws, await on_scope(pilot))


async def promote_elsewhere(pilot: Pilot, ws: Workspace, screen: AdaptersScreen) -> None:
    """Promote scope-v1 over the base from another connection, as `cra` would, and wait until
    the pane's Serving cell reads `scope-v1` whole."""
    stages = screen.query_one("#stages", DataTable)
    assert str(stages.get_cell(STAGE, "serving")) == "base"
    other = ws.reopen()
    promote_version(other, "scope-v1", reason="promoted from the CLI")
    other.db.conn.close()
    await until(
        pilot,
        lambda: str(stages.get_cell(STAGE, "serving")) == "scope-v1",
        "the poll to show the promotion",
    )
    await until(
        pilot,
        lambda: not cut_cells(stages),
        "the cell whole",
        detail=lambda: str(cut_cells(stages)),
    )


@pytest.mark.slow
async def test_promoting_over_a_no_gain_decision_asks_why(ws: Workspace) -> None:
    """A candidate the gate found no gain in is promoted only after its confirmation says so
    and the operator gives the override's reason (esc gives up); the activation log records
    the override and the reason."""
    fill(ws)
    ws.db["gate_decisions"].insert(
        {
            "adapter_id": 2,
            "stage": STAGE,
            "baseline": "scope-v1",
            "decision": "no gain",
            "reasons_json": '["no gain: no primary metric improves"]',
            "at": AT,
            "operator": "ana",
        }
    )
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        screen = await on_scope(pilot)
        await pilot.press("tab", "down")
        assert screen.selected_version == "scope-v2"
        for answer in ("escape", "enter"):
            await pilot.press("p")
            await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "question")
            body = str(pilot.app.screen.query_one(".dialog-body", Static).render())
            assert "The gate did not pass it: no gain against scope-v1." in body
            await pilot.press("y")
            await until(pilot, lambda: isinstance(pilot.app.screen, ReasonScreen), "the reason")
            if answer == "escape":
                await pilot.press("escape")
                await pilot.pause(0.3)
                assert resolve(ws, STAGE) == "scope-v1"
                continue
            await pilot.press(*"needed for the demo", "enter")
        await until(pilot, lambda: resolve(ws, STAGE) == "scope-v2", "the promotion")
        record = ws.db.execute(
            "SELECT override, reason FROM adapter_activations ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert record == ("no gain", "needed for the demo")


async def test_a_rollback_confirmed_after_another_switch_is_refused(ws: Workspace) -> None:
    """The rollback the operator confirms withdraws the version its confirmation showed: when
    another console promoted a newer one meanwhile, the rollback is refused, naming both, and
    the newer version still serves."""
    fill(ws)
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        await on_scope(pilot)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")
        body = str(pilot.app.screen.query_one(".dialog-body", Static).render())
        assert "scope goes back from scope-v1 to base" in body
        promote_version(Workspace.open(ws.root), "scope-v2")
        await pilot.press("y")
        refusal = "the rollback withdraws scope-v1, but scope-v2 serves scope now"
        await until(pilot, lambda: any(refusal in n for n in notes(pilot)), "the refusal")
        assert resolve(ws, STAGE) == "scope-v2"
        assert [h.action for h in history(ws, STAGE)][-1] == "promote"


async def test_a_refused_promotion_is_a_notification_and_changes_nothing(ws: Workspace) -> None:
    fill(ws)
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        screen = await on_scope(pilot)
        await pilot.press("tab")
        assert screen.selected_version == "scope-v3"
        await pilot.press("p")
        await until(pilot, lambda: any("was rejected" in n for n in notes(pilot)), "refusal")
        assert not isinstance(pilot.app.screen, ConfirmScreen)
        assert resolve(ws, STAGE) == "scope-v1"


async def test_the_serving_strip_lists_what_the_server_loaded(tmp_path: Path) -> None:
    base = str(tmp_path / "ws" / "models/reasoning")
    with FakeVllm(base) as fake:
        ws = _open(tmp_path / "ws", int(fake.url.rsplit(":", 1)[1]))
        fill(ws)
        fake.loaded["scope-v1"] = str(ws.root / "adapters/scope/v1")
        async with CraApp(ws, []).run_test(size=SIZE) as pilot:
            screen = await on_scope(pilot)
            await until(pilot, lambda: "loaded:" in serving_shown(screen), "serving status")
            shown = serving_shown(screen)
            assert f"reasoning {fake.url} running" in shown
            assert "loaded: scope-v1" in shown and "not loaded" not in shown


async def test_an_empty_workspace_says_how_versions_arrive(ws: Workspace) -> None:
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        await pilot.press("6")
        screen = pane(pilot)
        await until(pilot, lambda: bool(cell_texts(screen, "#versions")), "the hint")
        assert "no adapter versions yet" in cell_texts(screen, "#versions")[0]


def test_adapters_stage_with_versions(snap_compare, ws: Workspace) -> None:
    """The newest version selected (scope-v3, rejected), its evidence against the active
    scope-v1 with each metric's interval."""
    fill(ws)

    async def run_before(pilot: Pilot) -> None:
        screen = await on_scope(pilot)
        await until(pilot, lambda: "not running" in serving_shown(screen), "serving status")
        await until(pilot, lambda: "scope-v3 against" in evidence_shown(screen), "the evidence")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(CraApp(ws, []), terminal_size=SIZE, run_before=run_before)


def test_adapters_after_a_base_change(snap_compare, ws: Workspace) -> None:
    """The reasoning base changed after scope-v1 went live: the stage shows the bare base
    serving in yellow, and every version of the old base is marked unservable."""
    fill(ws)
    new_base = ws.root / "models/reasoning-v2"
    new_base.mkdir()
    (new_base / "config.json").write_text('{"new": true}')
    text = (ws.root / "cra.toml").read_text().replace("models/reasoning", "models/reasoning-v2")
    (ws.root / "cra.toml").write_text(text)
    register_base(Workspace.open(ws.root), "reasoning")

    async def run_before(pilot: Pilot) -> None:
        screen = await on_scope(pilot)
        await until(pilot, lambda: "not running" in serving_shown(screen), "serving status")
        await until(pilot, lambda: "scope-v3 against" in evidence_shown(screen), "the evidence")
        assert "base, not scope-v1" in cell_texts(screen, "#stages")[1]
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(
        CraApp(Workspace.open(ws.root), []), terminal_size=SIZE, run_before=run_before
    )


def test_adapters_promote_confirmation(snap_compare, ws: Workspace) -> None:
    fill(ws)

    async def run_before(pilot: Pilot) -> None:
        screen = await on_scope(pilot)
        await until(pilot, lambda: "not running" in serving_shown(screen), "serving status")
        await pilot.press("tab", "down")
        await until(pilot, lambda: "scope-v2 against" in evidence_shown(screen), "the evidence")
        await pilot.press("p")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(CraApp(ws, []), terminal_size=SIZE, run_before=run_before)


def test_adapters_empty_workspace(snap_compare, ws: Workspace) -> None:
    async def run_before(pilot: Pilot) -> None:
        await pilot.press("6")
        screen = pane(pilot)
        await until(pilot, lambda: bool(cell_texts(screen, "#versions")), "the hint")
        await until(pilot, lambda: "not running" in serving_shown(screen), "serving status")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(CraApp(ws, []), terminal_size=SIZE, run_before=run_before)


async def test_t_shows_the_selected_versions_lineage(ws: Workspace) -> None:
    fill(ws)
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        await on_scope(pilot)
        await pilot.press("tab", "down", "t")
        await until(pilot, lambda: isinstance(pilot.app.screen, TextScreen), "the lineage")
        body = str(pilot.app.screen.query_one(".dialog-body", Static).render())
        assert body.startswith("scope-v2 (candidate): rank 16 on base reasoning")
        assert "on dataset scope-d1 (manifest sha256 " + "0" * 64 + ")" in body
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, AdaptersScreen), "the pane")


def evidence_shown(screen: AdaptersScreen) -> str:
    return str(screen.query_one("#evidence", Static).render())


async def on_scored_candidate(pilot: Pilot) -> AdaptersScreen:
    """The scope stage with scope-v1 selected, its evidence shown."""
    screen = await on_scope_v1(pilot)
    await until(pilot, lambda: "scope-v1 against base" in evidence_shown(screen), "evidence")
    return screen


async def test_the_evidence_shows_baseline_candidate_difference_interval_and_n(
    ws: Workspace,
) -> None:
    """For the selected version against its baseline, each metric shows the baseline's and
    the candidate's value, the paired difference with its interval at the gate's level (the
    engine's numbers) and n, primary metrics starred; the eval set's size against its target,
    underpowered; the gate's decision word as recorded; and how many examples disagree."""
    version, candidate_id, base_id = scored_candidate(ws)
    runs = eval_row(ws, candidate_id), eval_row(ws, base_id)
    expected = {d.metric: d for d in paired_metrics(ws, STAGE, *runs, confidence=0.975)}
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        screen = await on_scored_candidate(pilot)
        shown = evidence_shown(screen)
    assert f"scope-v1 against base (eval runs {candidate_id} and {base_id})" in shown
    assert "eval set 1: 6 of 200 rows, underpowered" in shown
    assert "gate: underpowered vs base" in shown
    accuracy = expected["accuracy"]
    assert (accuracy.baseline, accuracy.candidate) == (8 / 18, 13 / 18)
    assert f"* accuracy          0.444 →  0.722  {accuracy.interval()}" in shown
    recall = expected["relevant_recall"]
    assert f"* relevant_recall   0.167 →  0.667  {recall.interval()}" in shown
    assert f"  valid_rate        1.000 →  0.833  {expected['valid_rate'].interval()}" in shown
    assert shown.count("n 6     paired bootstrap") == 3
    assert "4 examples better, 1 worse on accuracy" in shown


async def test_a_run_without_per_example_scores_says_so_instead_of_an_interval(
    ws: Workspace,
) -> None:
    """Runs recorded before per-example scores show their means and plain difference, and say
    there is no interval and why; no interval or n is drawn."""
    _, candidate_id, _ = scored_candidate(ws, scored=False)
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        screen = await on_scored_candidate(pilot)
        await until(pilot, lambda: "no interval:" in evidence_shown(screen), "the reason")
        shown = evidence_shown(screen)
    assert f"no interval: eval run {candidate_id} has no per-example scores" in shown
    assert "* accuracy          0.444 →  0.722  +0.278 (no interval)" in shown
    assert "interval]" not in shown and "n 6" not in shown and "bootstrap" not in shown


async def test_the_drill_down_lists_both_groups_and_shows_an_example_side_by_side(
    ws: Workspace,
) -> None:
    """`d` lists the examples where the two disagree on accuracy in two groups with their
    counts; the highlighted one shows its task, reference and both answers with their scores;
    an answer's Rich markup and escape sequences are shown as text, never obeyed."""
    scored_candidate(ws)
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        await on_scored_candidate(pilot)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, DifferencesScreen), "drill")
        drill = pilot.app.screen
        assert isinstance(drill, DifferencesScreen)
        await until(pilot, lambda: drill.found is not None, "the examples")
        listing = drill.query_one("#examples", OptionList)
        labels = [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]
        assert labels[0] == "scope-v1 better · 4"
        assert labels[1].startswith("line 2  3/3 (1.000) vs 1/3 (0.333)")
        assert labels[5] == "base better · 1"
        assert labels[6].startswith("line 1  0/3 (0.000) vs 3/3 (1.000)")

        def part(widget: str) -> str:
            return str(drill.query_one(widget, Static).render())

        assert "Task 25: make feature 25 configurable." in part("#example-task")
        assert '"relevant": ["src/feature25.py"]' in part("#example-reference")
        baseline = part("#answer-baseline")
        assert baseline.startswith("base (baseline)  1/3 (0.333)")
        assert '"irrelevant": ["src/feature25.py", "src/helpers25.py"' in baseline
        assert part("#answer-candidate").startswith("scope-v1 (candidate)  3/3 (1.000)")

        await pilot.press("end")
        await until(pilot, lambda: "Task 24" in part("#example-task"), "the hostile example")
        hostile = part("#answer-candidate")
        assert "[bold red]pwned[/] \\x1b[2J\\x1b]0;owned\\x07 done" in hostile
        assert "\x1b" not in hostile and "\x07" not in hostile
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, AdaptersScreen), "the pane")


def test_adapters_evidence_of_a_scored_candidate(snap_compare, ws: Workspace) -> None:
    scored_candidate(ws)

    async def run_before(pilot: Pilot) -> None:
        screen = await on_scored_candidate(pilot)
        await until(pilot, lambda: "not running" in serving_shown(screen), "serving status")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(CraApp(ws, []), terminal_size=SIZE, run_before=run_before)


def test_adapters_differences_drill_down(snap_compare, ws: Workspace) -> None:
    scored_candidate(ws)

    async def run_before(pilot: Pilot) -> None:
        await on_scored_candidate(pilot)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, DifferencesScreen), "drill")
        drill = pilot.app.screen
        await until(pilot, lambda: drill.found is not None, "the examples")
        await pilot.press("end")
        await until(
            pilot,
            lambda: "Task 24" in str(drill.query_one("#example-task", Static).render()),
            "the hostile example",
        )
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(CraApp(ws, []), terminal_size=SIZE, run_before=run_before)


def gate_cell(screen: AdaptersScreen, name: str) -> str:
    versions = screen.query_one("#versions", DataTable)
    try:
        return str(versions.get_cell(name, "gate"))
    except CellDoesNotExist:
        return ""


async def on_scope_v1(pilot: Pilot) -> AdaptersScreen:
    """The scope stage with its one version, scope-v1, selected."""
    screen = await on_second_stage(pilot)
    await until(pilot, lambda: screen.selected_version == "scope-v1", "scope-v1 selected")
    return screen


async def test_an_eval_shows_its_progress_on_the_row_then_announces_its_end(
    tmp_path: Path,
) -> None:
    """`e` starts the real eval job: while it answers the base's fourth row, scope-v1's Gate
    cell reads `evaluating: base 3/6 answered` and the evidence lists both runs with their
    state; when the job ends, one notification says it is done with the gate's word, and the
    Gate cell shows that decision."""
    with served_eval(tmp_path / "ws", hold_at=4) as (ws, _, held):
        async with CraApp(ws, []).run_test(size=SIZE) as pilot:
            screen = await on_scope_v1(pilot)
            await pilot.press("e")
            await until(
                pilot,
                lambda: gate_cell(screen, "scope-v1") == "evaluating: base 3/6 answered",
                "the row to show the baseline's progress",
                detail=lambda: gate_cell(screen, "scope-v1"),
            )
            shown = evidence_shown(screen)
            assert "eval run 1 of base: running, 3/6 answered" in shown
            assert "eval run 2 of scope-v1: queued" in shown
            versions = screen.query_one("#versions", DataTable)
            await until(
                pilot,
                lambda: not cut_cells(versions),
                "the row whole",
                detail=lambda: str(cut_cells(versions)),
            )
            held.release()
            await until(
                pilot,
                lambda: any("scope-v1: eval done; gate: " in n for n in notes(pilot)),
                "the end to be announced",
                detail=lambda: "\n".join(notes(pilot)),
            )
            decision = ws.db.execute("SELECT decision FROM gate_decisions").fetchone()[0]
            assert f"scope-v1: eval done; gate: {decision} against base" in notes(pilot)
            await until(
                pilot,
                lambda: gate_cell(screen, "scope-v1") == f"{decision} vs base",
                "the row to show the decision",
            )
            await pilot.pause(1.5)
            assert sum("eval done" in n for n in notes(pilot)) == 1


async def test_an_eval_started_from_the_cli_is_followed_and_its_failure_announced(
    tmp_path: Path,
) -> None:
    """An eval started from the command line while the console is open shows on the row too,
    and when it fails (the server refuses to load the candidate) one notification says so with
    the reason."""
    with served_eval(tmp_path / "ws", hold_at=4) as (ws, fake, held):
        fake.fail_loads.add("scope-v1")
        async with CraApp(ws, []).run_test(size=SIZE) as pilot:
            screen = await on_scope_v1(pilot)
            await until(pilot, lambda: gate_cell(screen, "scope-v1") == "—", "the row")
            start_eval(ws.reopen(), adapter="scope-v1")
            await until(
                pilot,
                lambda: gate_cell(screen, "scope-v1") == "evaluating: base 3/6 answered",
                "the row to show the eval started elsewhere",
                detail=lambda: gate_cell(screen, "scope-v1"),
            )
            held.release()
            await until(
                pilot,
                lambda: any("scope-v1: eval failed: " in n for n in notes(pilot)),
                "the failure to be announced",
                detail=lambda: "\n".join(notes(pilot)),
            )
            [note] = [n for n in notes(pilot) if "eval failed" in n]
            assert "Call to add_lora method failed: CUDA out of memory" in note
            await until(pilot, lambda: gate_cell(screen, "scope-v1") == "—", "the row again")


def test_adapters_eval_under_way(snap_compare, tmp_path: Path) -> None:
    """At 160 × 50, scope-v1's eval job caught answering the base's fourth row: the Gate cell
    and the evidence say how far it has got. The job read its server's address when it
    started; the console is then pointed at port 1, where nothing listens, so the port in the
    snapshot never changes."""
    with served_eval(tmp_path / "ws", hold_at=4) as (ws, _, held):
        start_eval(ws, adapter="scope-v1")
        wait_for(lambda: held.asked == 4, "the job to ask for the base's fourth answer")
        console = _open(ws.root, 1)

        async def run_before(pilot: Pilot) -> None:
            screen = await on_scope_v1(pilot)
            await until(
                pilot,
                lambda: gate_cell(screen, "scope-v1") == "evaluating: base 3/6 answered",
                "the progress",
            )
            await until(pilot, lambda: "not running" in serving_shown(screen), "serving status")
            await until(pilot, lambda: "3/6 answered" in evidence_shown(screen), "the evidence")
            await pilot.wait_for_scheduled_animations()

        assert snap_compare(CraApp(console, []), terminal_size=(160, 50), run_before=run_before)
