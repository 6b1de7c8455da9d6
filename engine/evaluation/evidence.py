"""Why the gate decided as it did, for the operator to check: a version's eval beside its
baseline's, metric by metric and example by example.

The baseline is the one the version's newest gate decision compared it with; with no decision,
the stage's active version (the base when the version is the active one). `version_evidence`
finds their runs on a shared eval set (`gate.compare`) and pairs their per-example scores
(`example_scores.paired_metrics`): baseline, candidate, the difference with its interval, n.
When a run has no per-example scores there is no interval, and the evidence says why instead.
`differences` lists the examples where the two disagree on a metric, each with the prompt's
task text, the reference and both answers (`evals/<id>/answers.jsonl`, `harness.json`). The
Adapters pane and `cra eval show` both render what is gathered here; the answers and prompts
are text from outside, which every renderer passes through `terminal_text.neutralise`.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Any

from engine.adapters.activation import AdapterVersion, version_by_id, version_row
from engine.core.errors import CraError
from engine.core.stages import PRIMARY, SECONDARY, as_stage
from engine.core.workspace import Workspace
from engine.evaluation.eval_run import UNDER_WAY, EvalRun
from engine.evaluation.eval_set import EvalRow, EvalSetRecord, eval_set_record, load_eval_set
from engine.evaluation.example_scores import (
    ExampleScore,
    ExampleScoresError,
    disagreements,
    paired_metrics,
)
from engine.evaluation.gate import (
    BASE,
    compare,
    done_evals,
    latest_decision,
    metric_confidence,
    serving_row,
)
from engine.evaluation.paired import Counts, PairedDifference
from engine.evaluation.runs import eval_jobs, eval_row

ANSWERS_FILE = "answers.jsonl"
HARNESS_FILE = "harness.json"


class EvidenceError(CraError):
    """The examples behind a comparison cannot be read back as recorded."""


@dataclass(frozen=True)
class MetricEvidence:
    """One metric: the two runs' values and, when both have per-example scores, the paired
    difference with its interval."""

    metric: str
    primary: bool
    baseline: float | None
    candidate: float | None
    paired: PairedDifference | None

    def line(self) -> str:
        """`* accuracy  0.600 → 0.650  +0.050 [-0.020, +0.120]  n 40  paired bootstrap`; with
        no pairs, the plain difference and no interval."""
        mark = "*" if self.primary else " "
        base = "—" if self.baseline is None else f"{self.baseline:.3f}"
        cand = "—" if self.candidate is None else f"{self.candidate:.3f}"
        head = f"{mark} {self.metric:<16} {base:>6} → {cand:>6}"
        if self.paired is not None:
            paired = self.paired
            return f"{head}  {paired.interval():<28} n {paired.n:<5} {paired.method}"
        if self.baseline is None or self.candidate is None:
            return head
        return f"{head}  {self.candidate - self.baseline:+.3f} (no interval)"


@dataclass(frozen=True)
class VersionEvidence:
    """A version's newest eval beside its baseline's, with what the gate decided."""

    name: str
    stage: str
    baseline: str
    candidate_eval: EvalRun | None
    baseline_eval: EvalRun | None
    eval_set: EvalSetRecord | None
    metrics: list[MetricEvidence]
    unpaired: str | None
    """Why there are no paired differences (no eval yet, no per-example scores); None when
    there are."""
    decision: str | None
    """The newest gate decision's word, as recorded, and its baseline."""
    under_way: list[EvalRun] = field(default_factory=list)
    """The runs still queued or running of the eval jobs that score the version (a baseline
    queued before it among them), with their progress."""

    @property
    def primary_metric(self) -> str:
        """The stage's first primary metric: the one the drill-down lists disagreements on."""
        return PRIMARY[as_stage(self.stage)][0]

    @property
    def paired(self) -> bool:
        return self.unpaired is None

    def set_line(self) -> str:
        """Which eval set both runs scored: id, size against target, underpowered when so."""
        if self.eval_set is not None:
            record = self.eval_set
            power = ", underpowered" if record.underpowered else ""
            return (
                f"eval set {record.id}: {record.size} of {record.target_size} rows{power} "
                f"(sha256 {record.sha256[:12]})"
            )
        if self.candidate_eval is not None:
            sha = self.candidate_eval.eval_sha256[:12]
            return f"eval set: a dataset's eval.jsonl (sha256 {sha})"
        return "eval set: none scored yet"

    def heading(self) -> list[str]:
        """Which runs are paired, on which eval set, what the gate decided, what runs now."""
        runs = ""
        if self.candidate_eval is not None:
            base = "—" if self.baseline_eval is None else str(self.baseline_eval.id)
            runs = f" (eval runs {self.candidate_eval.id} and {base})"
        lines = [f"{self.name} against {self.baseline}{runs}", self.set_line()]
        if self.decision is not None:
            lines.append(f"gate: {self.decision}")
        lines.extend(f"eval run {run.id} of {run.target}: {run.state()}" for run in self.under_way)
        return lines

    def table_header(self) -> str | None:
        """The metric table's column names; None with no eval to show."""
        if self.candidate_eval is None:
            return None
        columns = f"  {'metric':<16} {'base':>6}   {'cand':>6}  "
        if not self.paired:
            return f"{columns}difference"
        level = next(m.paired.confidence for m in self.metrics if m.paired is not None)
        return f"{columns}{f'difference [{level:.1%} interval]':<28} n     method"

    def footer(self) -> str:
        """Why there are no intervals, or how many examples disagree on the primary metric."""
        if self.unpaired is not None:
            return self.unpaired
        primary = next(m.paired for m in self.metrics if m.metric == self.primary_metric)
        if primary is None:
            return f"{self.primary_metric}: neither run scored it example by example"
        return f"{primary.better} examples better, {primary.worse} worse on {primary.metric}"

    def lines(self) -> list[str]:
        """The evidence as text: the heading, one line a metric, then the footer."""
        header = self.table_header()
        table = [] if header is None else [header, *(m.line() for m in self.metrics)]
        return [*self.heading(), *table, self.footer()]


def _baseline_row(ws: Workspace, row: AdapterVersion) -> AdapterVersion | None:
    """The version the newest decision compared `row` with; else the active one, or the base
    for the active version itself."""
    decision = latest_decision(ws, row.id)
    if decision is not None:
        return None if decision["baseline"] == BASE else version_row(ws, decision["baseline"])
    active = serving_row(ws, row.stage)
    return None if active is not None and active.id == row.id else active


def _decision_word(ws: Workspace, row: AdapterVersion) -> str | None:
    decision = latest_decision(ws, row.id)
    return None if decision is None else f"{decision['decision']} vs {decision['baseline']}"


def _gather(
    ws: Workspace,
    stage: str,
    name: str,
    baseline: str,
    cand_eval: EvalRun | None,
    base_eval: EvalRun | None,
    decision: str | None,
    under_way: list[EvalRun],
    reuse: VersionEvidence | None,
) -> VersionEvidence:
    same_runs = (
        reuse is not None
        and reuse.candidate_eval == cand_eval
        and reuse.baseline_eval == base_eval
        and reuse.name == name
    )
    paired: dict[str, PairedDifference] = {}
    unpaired: str | None
    if same_runs:
        assert reuse is not None
        paired = {m.metric: m.paired for m in reuse.metrics if m.paired is not None}
        unpaired = reuse.unpaired
    elif cand_eval is None:
        unpaired = f"{name} has no finished eval run"
    elif base_eval is None:
        unpaired = f"{baseline} has no finished eval run on {name}'s eval set: no paired comparison"
    else:
        try:
            level = metric_confidence(stage, ws.config.gate.confidence)
            compared = paired_metrics(ws, stage, cand_eval, base_eval, confidence=level)
            paired = {d.metric: d for d in compared}
            unpaired = None
        except (ExampleScoresError, ValueError) as exc:
            unpaired = f"no interval: {exc}"
    cand_values = {} if cand_eval is None else cand_eval.metrics
    base_values = {} if base_eval is None else base_eval.metrics
    metrics = [
        MetricEvidence(
            metric=metric,
            primary=primary,
            baseline=base_values.get(metric),
            candidate=cand_values.get(metric),
            paired=paired.get(metric),
        )
        for primary, names in (
            (True, PRIMARY[as_stage(stage)]),
            (False, SECONDARY[as_stage(stage)]),
        )
        for metric in names
    ]
    eval_set_id = None if cand_eval is None else cand_eval.eval_set_id
    return VersionEvidence(
        name=name,
        stage=stage,
        baseline=baseline,
        candidate_eval=cand_eval,
        baseline_eval=base_eval,
        eval_set=None if eval_set_id is None else eval_set_record(ws, eval_set_id),
        metrics=metrics,
        unpaired=unpaired,
        decision=decision,
        under_way=under_way,
    )


def version_evidence(
    ws: Workspace, name: str, reuse: VersionEvidence | None = None
) -> VersionEvidence:
    """Version `name`'s newest eval beside its baseline's on their newest shared eval set.
    `reuse`, an earlier answer, saves pairing again when the two runs are unchanged."""
    row = version_row(ws, name)
    stage = row.stage
    baseline = _baseline_row(ws, row)
    comparison = compare(ws, stage, row, baseline)
    under_way = [
        run
        for job in eval_jobs(ws)
        if any(mine.adapter_id == row.id for mine in job.runs)
        for run in job.runs
        if run.status in UNDER_WAY
    ]
    return _gather(
        ws,
        stage,
        name,
        comparison.baseline,
        comparison.candidate_eval,
        comparison.baseline_eval,
        _decision_word(ws, row),
        under_way,
        reuse,
    )


def run_evidence(ws: Workspace, eval_id: int) -> VersionEvidence | None:
    """Finished eval run `eval_id` beside its version's baseline's newest finished run on the
    same eval set; None for a run of the base, which is every first baseline itself."""
    run = eval_row(ws, eval_id)
    if run.adapter_id is None:
        return None
    if run.status != "done":
        raise EvidenceError(
            f"eval run {eval_id} is not done (status {run.status}): only a finished run has "
            "results to compare"
        )
    row = version_by_id(ws, run.adapter_id)
    stage = row.stage
    baseline = _baseline_row(ws, row)
    base_eval = next(
        (
            other
            for other in done_evals(ws, stage, baseline)
            if other.eval_sha256 == run.eval_sha256
        ),
        None,
    )
    return _gather(
        ws,
        stage,
        row.name,
        BASE if baseline is None else baseline.name,
        run,
        base_eval,
        _decision_word(ws, row),
        [],
        None,
    )


@dataclass(frozen=True)
class Side:
    """One run's part of a differing example: its score on the metric and its answer."""

    counts: Counts
    answer: str
    note: str | None
    """The answer's error, or the harness outcome when the harness scored it."""

    def score(self) -> str:
        """`2/3 (0.667)`."""
        hits, out_of = self.counts
        share = hits / out_of if out_of else 0.0
        return f"{hits}/{out_of} ({share:.3f})"


@dataclass(frozen=True)
class DifferingExample:
    """An example the two runs score differently, with what was asked and both answers."""

    key: str
    line: int | None
    example_id: int | None
    task: str | None
    prompt: str
    """The prompt's last user message: the task text the model was given."""
    reference: str
    candidate: Side
    baseline: Side

    def title(self) -> str:
        where = f"line {self.line}" if self.line is not None else f"task {self.task}"
        example = "" if self.example_id is None else f" (example {self.example_id})"
        scores = f"candidate {self.candidate.score()}, baseline {self.baseline.score()}"
        return f"{where}{example}: {scores}"


@dataclass(frozen=True)
class Differences:
    """The examples where the candidate scored higher (`better`) or lower (`worse`) on
    `metric` than its baseline, in eval-set order."""

    metric: str
    candidate: str
    baseline: str
    better: list[DifferingExample]
    worse: list[DifferingExample]


def _answers(ws: Workspace, run: EvalRun) -> dict[int, dict[str, Any]]:
    """A run's answers.jsonl by eval-set line."""
    path = ws.root / run.out_dir / ANSWERS_FILE
    answers = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read eval run {run.id}'s answers: {exc}") from exc
    for number, raw in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EvidenceError(f"{path}:{number}: not a JSON line: {exc}") from exc
        if not isinstance(record, dict) or not isinstance(record.get("line"), int):
            raise EvidenceError(f"{path}:{number}: an answer line names no eval-set line")
        answers[record["line"]] = record
    return answers


def _outcomes(ws: Workspace, run: EvalRun) -> dict[str, dict[str, Any]]:
    """A run's harness outcomes by `line:N` or task name; empty when the harness never ran."""
    path = ws.root / run.out_dir / HARNESS_FILE
    if not path.exists():
        return {}
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvidenceError(f"{path}: cannot read eval run {run.id}'s outcomes: {exc}") from exc
    return {
        f"line:{record['line']}" if "line" in record else record["task"]: record
        for record in records
    }


def _side(
    ws: Workspace,
    run: EvalRun,
    score: ExampleScore,
    metric: str,
    answers: dict[int, dict[str, Any]],
    outcomes: dict[str, dict[str, Any]],
) -> Side:
    notes = []
    answer = ""
    if score.line is not None:
        record = answers.get(score.line)
        if record is None:
            raise EvidenceError(
                f"{ws.root / run.out_dir / ANSWERS_FILE}: no answer for line {score.line}, "
                f"which eval run {run.id} scored"
            )
        answer = str(record.get("answer", ""))
        if record.get("error"):
            notes.append(f"error: {record['error']}")
    outcome = outcomes.get(score.key)
    if outcome is not None:
        reason = f": {outcome['reason']}" if outcome.get("reason") else ""
        notes.append(f"harness: {outcome['outcome']}{reason}")
    return Side(score.counts[metric], answer, "; ".join(notes) or None)


def _prompt(row: EvalRow | None) -> str:
    if row is None:
        return ""
    users = [m["content"] for m in row.messages if m["role"] == "user"]
    return users[-1] if users else (row.messages[-1]["content"] if row.messages else "")


def differences(ws: Workspace, evidence: VersionEvidence, metric: str | None = None) -> Differences:
    """The examples where the evidence's two runs disagree on `metric` (default: the stage's
    first primary metric), each with its prompt, reference and both answers."""
    metric = metric or evidence.primary_metric
    known = (*PRIMARY[as_stage(evidence.stage)], *SECONDARY[as_stage(evidence.stage)])
    if metric not in known:
        raise EvidenceError(
            f"{metric!r} is not a {evidence.stage} metric; its metrics: {', '.join(known)}"
        )
    cand, base = evidence.candidate_eval, evidence.baseline_eval
    if cand is None or base is None or not evidence.paired:
        why = evidence.unpaired or "there is nothing to compare"
        raise EvidenceError(f"{evidence.name} against {evidence.baseline}: {why}")
    if cand.eval_set_id is None:
        raise EvidenceError(
            f"eval run {cand.id} scored a dataset's eval.jsonl, not a frozen eval set: its "
            "prompts are not recorded line by line; run `cra eval run` again"
        )
    rows = load_eval_set(ws, cand.eval_set_id).rows
    by_line = {row.line: row for row in rows}
    by_task: dict[str, EvalRow] = {}
    for row in rows:
        if row.task is not None:
            by_task.setdefault(row.task.name, row)
    answers = {cand.id: _answers(ws, cand), base.id: _answers(ws, base)}
    outcomes = {cand.id: _outcomes(ws, cand), base.id: _outcomes(ws, base)}

    def example(mine: ExampleScore, theirs: ExampleScore) -> DifferingExample:
        row = by_line.get(mine.line) if mine.line is not None else by_task.get(mine.task or "")
        return DifferingExample(
            key=mine.key,
            line=mine.line,
            example_id=mine.example_id,
            task=mine.task,
            prompt=_prompt(row),
            reference="" if row is None else row.reference,
            candidate=_side(ws, cand, mine, metric, answers[cand.id], outcomes[cand.id]),
            baseline=_side(ws, base, theirs, metric, answers[base.id], outcomes[base.id]),
        )

    up, down = disagreements(ws, cand.id, base.id, metric)
    return Differences(
        metric=metric,
        candidate=evidence.name,
        baseline=evidence.baseline,
        better=[example(mine, theirs) for mine, theirs in up],
        worse=[example(mine, theirs) for mine, theirs in down],
    )


def shorten(text: str, width: int) -> str:
    """`text` on one line (runs of whitespace as one space), cut to `width` with `…`."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= width else flat[: width - 1] + "…"
