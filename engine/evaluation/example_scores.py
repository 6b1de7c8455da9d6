"""Each eval run's per-example scores (`eval_scores`), and two runs compared pair by pair.

The eval worker records one row per example when a run is done, in the same transaction as
the run's means, so a done run always has both. Two runs on one eval set have the same keys;
`paired_metrics` lines them up and asks `paired.compare_counts` how sure the difference is.
"""

import json
from dataclasses import dataclass
from typing import Any

from engine.core.errors import CraError
from engine.core.stages import PRIMARY, SECONDARY, as_stage
from engine.core.workspace import Workspace
from engine.evaluation.eval_run import EvalRun
from engine.evaluation.paired import Counts, PairedDifference, compare_counts
from engine.evaluation.paired import score as share


class ExampleScoresError(CraError):
    """Two eval runs that cannot be compared example by example."""


@dataclass(frozen=True)
class ExampleScore:
    """One example of one eval run: which row or task it is, and (hits, out of) per metric."""

    key: str
    line: int | None
    example_id: int | None
    task: str | None
    valid: bool | None
    counts: dict[str, Counts]

    def record(self, eval_id: int) -> dict[str, Any]:
        """The `eval_scores` row of this example in run `eval_id`."""
        return {
            "eval_id": eval_id,
            "key": self.key,
            "line": self.line,
            "example_id": self.example_id,
            "task": self.task,
            "valid": None if self.valid is None else int(self.valid),
            "counts_json": json.dumps(
                {name: list(pair) for name, pair in sorted(self.counts.items())}
            ),
        }


def line_key(line: int) -> str:
    """The key of an eval row scored on its own."""
    return f"line:{line}"


def load_scores(ws: Workspace, eval_id: int) -> dict[str, ExampleScore]:
    """Eval run `eval_id`'s examples by key, in the order they were recorded."""
    scores = {}
    for row in ws.db["eval_scores"].rows_where("eval_id = ?", [eval_id], order_by="rowid"):
        counts = {name: (pair[0], pair[1]) for name, pair in json.loads(row["counts_json"]).items()}
        scores[row["key"]] = ExampleScore(
            key=row["key"],
            line=row["line"],
            example_id=row["example_id"],
            task=row["task"],
            valid=None if row["valid"] is None else bool(row["valid"]),
            counts=counts,
        )
    return scores


def paired_metrics(
    ws: Workspace,
    stage: str,
    candidate_eval: EvalRun,
    baseline_eval: EvalRun,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[PairedDifference]:
    """Every metric of `stage` (primary first) that both runs scored, compared pair by pair."""
    if candidate_eval.eval_sha256 != baseline_eval.eval_sha256:
        raise ExampleScoresError(
            f"eval runs {candidate_eval.id} and {baseline_eval.id} scored different eval "
            "sets; a paired comparison needs the same one"
        )
    mine = load_scores(ws, candidate_eval.id)
    theirs = load_scores(ws, baseline_eval.id)
    if not mine or not theirs:
        missing = candidate_eval.id if not mine else baseline_eval.id
        raise ExampleScoresError(
            f"eval run {missing} has no per-example scores; run `cra eval run` again"
        )
    if set(mine) != set(theirs):
        raise ExampleScoresError(
            f"eval runs {candidate_eval.id} and {baseline_eval.id} scored different "
            "examples of one eval set"
        )
    keys = list(mine)
    differences = []
    for metric in (*PRIMARY[as_stage(stage)], *SECONDARY[as_stage(stage)]):
        pairs = [
            (mine[key].counts[metric], theirs[key].counts[metric])
            for key in keys
            if metric in mine[key].counts and metric in theirs[key].counts
        ]
        if not pairs:
            continue
        candidate, baseline = zip(*pairs, strict=True)
        differences.append(
            compare_counts(metric, candidate, baseline, confidence=confidence, seed=seed)
        )
    return differences


def disagreements(
    ws: Workspace, candidate_eval_id: int, baseline_eval_id: int, metric: str
) -> tuple[list[tuple[ExampleScore, ExampleScore]], list[tuple[ExampleScore, ExampleScore]]]:
    """The examples where the two runs' `metric` differs: (candidate higher, baseline
    higher), each a list of (candidate's score, baseline's score) pairs in recorded order."""
    mine = load_scores(ws, candidate_eval_id)
    theirs = load_scores(ws, baseline_eval_id)
    up: list[tuple[ExampleScore, ExampleScore]] = []
    down: list[tuple[ExampleScore, ExampleScore]] = []
    for key, score in mine.items():
        other = theirs.get(key)
        if other is None or metric not in score.counts or metric not in other.counts:
            continue
        ours, base = share(score.counts[metric]), share(other.counts[metric])
        if ours > base:
            up.append((score, other))
        elif ours < base:
            down.append((score, other))
    return up, down
