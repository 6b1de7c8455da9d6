"""The whole loop on the demo workspace, without a person: `cra demo --run`.

Each step calls the same engine functions the console's keys call, and says what it did:
approve the demo package from the demo drive; run a gold harness campaign on it (which derives
its examples and pairs when it finishes); draw a spot-check round of one stage, as large as
the review gate asks for (`review_sample_size`), and decide it (a person reads it in the Review
pane; here each item is decided by its stage contract's checks, `contracts.check_item`, the
rules `cra data audit` counts: accepted when it breaks none, rejected naming the rules it
breaks, and every note says no person read it); build the stage's frozen eval set (its newest
tasks, which curation then holds out of train); curate a dataset; train a tiny adapter on the
CPU (the demo config's `[training.hyper.scope]`: 200 steps at a learning rate a tiny model
learns at); evaluate it against the base on that eval set, say the gate's decision with each
metric's paired difference and interval, which must be a pass; promote it; roll it back.
Then train a second candidate that cannot be better, the same run at a learning rate of 1e-12
(its LoRA update is nil, so it answers as the base does), evaluate it and say what the gate
decides. A step that cannot go on raises with the reason.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.adapters.activation import version_row
from engine.core.errors import CraError
from engine.core.workspace import Workspace
from engine.evaluation.eval_run import EvalRun
from engine.evaluation.eval_set import build_eval_set
from engine.evaluation.gate import decision_lines, latest_decision
from engine.evaluation.runs import eval_jobs, eval_row, reconcile_evals, start_eval
from engine.harness.campaigns import (
    campaign_row,
    create_campaign,
    parse_spec,
    reconcile_campaigns,
    start_campaign,
)
from engine.intake.approval import approve_package
from engine.promotion.switch import promote_version, rollback_stage
from engine.training.runs import reconcile_runs, run_row, start_run
from engine.training_data.contracts import check_item
from engine.training_data.curate import curate
from engine.training_data.review import decide, draw_sample, set_note
from engine.training_data.store import load_item

STAGE = "scope"
PACKAGE = "textkit"
WAIT_LIMIT_S = 900.0
DEMO_NOTE = (
    "decided by `cra demo --run` from the stage contract's checks alone, not read by a person: "
    "an operator reads each item against the guidelines"
)

NO_GAIN_LR = 1e-12
"""The second candidate's learning rate: too small to move a weight, so it cannot gain."""

Say = Callable[[str], None]


class DemoLoopError(CraError):
    """A step of the demo loop did not end as it must for the next one to start."""


def _wait(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not done():
        if time.monotonic() > deadline:
            raise DemoLoopError(f"{what} did not end within {WAIT_LIMIT_S:g}s")
        time.sleep(0.5)


def _campaign_ended(ws: Workspace, campaign_id: int) -> bool:
    reconcile_campaigns(ws)
    return campaign_row(ws, campaign_id).status not in ("running", "pausing", "stopping")


def _run_ended(ws: Workspace, run_id: int) -> bool:
    reconcile_runs(ws)
    return run_row(ws, run_id).status not in ("pending", "running", "stopping")


def _evals_ended(ws: Workspace, eval_ids: list[int]) -> bool:
    """The eval job has ended: its runs, and the gate it puts the candidate through after."""
    reconcile_evals(ws)
    return not any(job.live for job in eval_jobs(ws, eval_ids[-1:]) if job.key == eval_ids[-1])


def run_loop(ws: Workspace, drive: Path, say: Say) -> str:
    """Walk the loop once on `ws`; returns the name of the adapter version it trained."""
    reviewed_stage(ws, drive, say)

    curated = curate(ws, stage=STAGE, format="sft")
    if not curated.curated:
        reasons = "; ".join(blocked.reason for blocked in curated.blocked)
        raise DemoLoopError(f"curation of {STAGE} was blocked: {reasons}")
    dataset = curated.curated[0]
    say(f"5. curated dataset {dataset.id}")

    name, decision = _train_and_gate(ws, dataset.id, {}, 6, say)
    if decision["decision"] != "pass":
        raise DemoLoopError(f"the gate did not pass {name}: {decision['reasons_json']}")

    promoted = promote_version(ws, name, reason="demo loop")
    say(f"8. promoted {name}: {promoted.server}")
    rolled = rollback_stage(ws, STAGE, name, reason="demo loop")
    say(f"9. rolled {STAGE} back to {rolled.active}: {rolled.server}")

    _train_and_gate(ws, dataset.id, {"learning_rate": NO_GAIN_LR}, 10, say)
    return name


def reviewed_stage(ws: Workspace, drive: Path, say: Say) -> None:
    """The loop up to curation: approve, run the gold campaign, spot-check scope's round (by
    its contract's checks) and freeze its eval set. What the autopilot finds after a day's
    work: a stage whose reviewed data is ready to train."""
    approved = approve_package(ws, drive / PACKAGE)
    say(f"1. approved {approved.label} from {drive}")

    spec = parse_spec(
        {
            "packages": [approved.digest],
            "pipeline": "gold",
            "model": "gold",
            "temperatures": [0.0],
            "seeds": [1],
            "workers": 2,
        }
    )
    campaign_id = create_campaign(ws, spec, ws.config.operator)
    start_campaign(ws, campaign_id)
    say(f"2. gold harness campaign {campaign_id} started")
    _wait(f"campaign {campaign_id}", lambda: _campaign_ended(ws, campaign_id))
    outcomes = dict(
        ws.db.execute(
            "SELECT outcome, COUNT(*) FROM attempts WHERE campaign_id = ? GROUP BY outcome",
            [campaign_id],
        ).fetchall()
    )
    status = campaign_row(ws, campaign_id).status
    if status != "done":
        raise DemoLoopError(f"campaign {campaign_id} ended {status}, not done")
    say(
        f"   campaign {campaign_id} done: "
        + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
    )

    counts = dict(ws.db.execute("SELECT kind, COUNT(*) FROM examples GROUP BY kind").fetchall())
    say(
        f"3. training data: {counts.get('sft', 0)} examples and {counts.get('preference', 0)} "
        "preference pairs, derived when the campaign finished"
    )

    size = ws.config.training_data.review_sample_size
    round_id = draw_sample(ws, STAGE, size, seed=0)
    items = ws.db.execute(
        "SELECT COUNT(*) FROM review_items WHERE round_id = ?", [round_id]
    ).fetchone()[0]
    if items < size:
        raise DemoLoopError(
            f"round {round_id} of {STAGE} drew {items} items: a review round holds "
            f"[training_data] review_sample_size = {size}"
        )
    rejected = 0
    for position, example_id in ws.db.execute(
        "SELECT position, example_id FROM review_items WHERE round_id = ? ORDER BY position",
        [round_id],
    ).fetchall():
        broken = check_item(load_item(ws.db, example_id))
        note = f"{DEMO_NOTE}; breaks {', '.join(broken)}" if broken else DEMO_NOTE
        set_note(ws, round_id, position, note)
        decide(ws, round_id, position, "reject" if broken else "accept")
        rejected += bool(broken)
    say(
        f"4. spot-check round {round_id} of {STAGE}: {items} items drawn, decided by the stage "
        f"contract's checks: {items - rejected} accepted, {rejected} rejected"
    )

    eval_set = build_eval_set(ws, STAGE).eval_set
    say(f"   {eval_set.summary()}")


def _train_and_gate(
    ws: Workspace, dataset_id: str, overrides: dict[str, float], number: int, say: Say
) -> tuple[str, dict[str, Any]]:
    """Train a candidate on `dataset_id` (the config's settings, then `overrides`), evaluate it
    (and the base, unless the base has a done eval on the same set) and say the gate's decision
    with the paired evidence it rests on; returns its name and that decision."""
    run_id = start_run(ws, dataset_id, STAGE, overrides=overrides)
    spec = run_row(ws, run_id).spec
    say(
        f"{number}. training run {run_id} started on {dataset_id} (tiny model, CPU, "
        f"{spec.hyper.max_steps} steps at learning rate {spec.hyper.learning_rate:g})"
    )
    _wait(f"training run {run_id}", lambda: _run_ended(ws, run_id))
    run = run_row(ws, run_id)
    if run.status != "done" or run.adapter_name is None:
        raise DemoLoopError(f"training run {run_id} ended {run.status}: {run.reason}")
    name = run.adapter_name
    say(f"   run {run_id} done at step {run.step}, loss {run.loss:.4f}: candidate {name}")

    eval_ids = start_eval(ws, adapter=name)
    runs = "eval runs" if len(eval_ids) > 1 else "eval run"
    say(f"{number + 1}. {runs} {', '.join(map(str, eval_ids))} started for {name}")
    _wait("the eval job", lambda: _evals_ended(ws, eval_ids))
    for eval_id in eval_ids:
        row = eval_row(ws, eval_id)
        if row.status != "done":
            raise DemoLoopError(f"eval run {eval_id} ended {row.status}: {row.reason}")
    decision = latest_decision(ws, version_row(ws, name).id)
    if decision is None:
        raise DemoLoopError(f"the gate did not decide on {name}")
    base = eval_row(ws, decision["baseline_eval_id"])
    candidate = eval_row(ws, decision["candidate_eval_id"])
    for row in (base, candidate):
        say(f"   eval {row.id} of {row.target}: {_metrics(row)}")
    for line in decision_lines(ws, decision):
        say(f"   {line}")
    return name, decision


def _metrics(run: EvalRun) -> str:
    return ", ".join(f"{metric} {value:.3f}" for metric, value in sorted(run.metrics.items()))
