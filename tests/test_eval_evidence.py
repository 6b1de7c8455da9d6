"""The evidence behind a gate decision (`engine.evaluation.evidence`) and `cra eval show`: a
candidate's run beside its baseline's on a real frozen eval set, metric by metric with the
paired interval, and the examples they disagree on, read back from the runs' recorded scores
and answers (`evidence_fixtures`)."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from evidence_fixtures import scored_candidate
from workspaces import open_workspace

from app.cli import cli
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.evaluation.evidence import EvidenceError, differences, version_evidence
from engine.evaluation.example_scores import paired_metrics
from engine.evaluation.runs import eval_row


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return open_workspace(tmp_path / "ws")


def show(ws: Workspace, *args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "eval", "show", *args])
    return result.exit_code, result.output.splitlines()


def test_eval_show_prints_each_metric_beside_the_baseline_with_its_interval(
    ws: Workspace,
) -> None:
    """`cra eval show` of a candidate's run prints, after the run, the pairing, the eval set
    (size against target, underpowered), the gate's word, then per metric baseline →
    candidate, the paired difference [low, high] at the gate's level for the metric (97.5 %
    for scope's two primary metrics), n and the method: the engine's numbers."""
    _, candidate_id, base_id = scored_candidate(ws)
    runs = eval_row(ws, candidate_id), eval_row(ws, base_id)
    expected = {d.metric: d for d in paired_metrics(ws, "scope", *runs, confidence=0.975)}
    code, lines = show(ws, str(candidate_id))
    assert code == 0, lines
    start = lines.index(f"scope-v1 against base (eval runs {candidate_id} and {base_id})")
    assert lines[start + 1].startswith("eval set 1: 6 of 200 rows, underpowered (sha256 ")
    assert lines[start + 2] == "gate: underpowered vs base"
    assert lines[start + 4 : start + 8] == [
        f"* accuracy          0.444 →  0.722  {expected['accuracy'].interval():<28} n 6     "
        "paired bootstrap",
        f"* relevant_recall   0.167 →  0.667  {expected['relevant_recall'].interval():<28} "
        "n 6     paired bootstrap",
        f"  valid_rate        1.000 →  0.833  {expected['valid_rate'].interval():<28} n 6     "
        "paired bootstrap",
        "4 examples better, 1 worse on accuracy",
    ]


def test_eval_show_differences_lists_both_sides_with_safe_shortened_answers(
    ws: Workspace,
) -> None:
    """`--differences` lists the examples each run scored higher, with their lines, scores and
    one shortened line each of task, reference and answers; `--limit` cuts each side and says
    how many are left; the hostile answer's markup and escapes are printed as text."""
    _, candidate_id, _ = scored_candidate(ws)
    code, lines = show(ws, str(candidate_id), "--differences", "--limit", "2")
    assert code == 0, lines
    start = lines.index("scope-v1 better on accuracy: 4 examples")
    assert lines[start + 1] == "  line 2 (example 26): candidate 3/3 (1.000), baseline 1/3 (0.333)"
    assert lines[start + 2] == "    task:      Task 25: make feature 25 configurable."
    assert lines[start + 4].startswith(
        '    baseline:  {"relevant": [], "supporting": [], "irrelevant": ["src/feature25.py"'
    )
    assert lines[start + 11] == "  … 2 more (--limit)"
    worse = lines.index("base better on accuracy: 1 example")
    assert lines[worse + 1] == "  line 1 (example 25): candidate 0/3 (0.000), baseline 3/3 (1.000)"
    assert lines[worse + 5] == "    candidate: [bold red]pwned[/] \\x1b[2J\\x1b]0;owned\\x07 done"
    assert not any("\x1b" in line or "\x07" in line for line in lines)


def test_eval_show_says_when_there_is_no_interval_and_refuses_differences(
    ws: Workspace,
) -> None:
    """Runs without per-example scores print their means and plain difference and say there
    is no interval and why; `--differences` on them is one line and a non-zero exit; so is an
    unknown metric, and a run of the base says it is compared with nothing."""
    _, candidate_id, base_id = scored_candidate(ws, scored=False)
    code, lines = show(ws, str(candidate_id))
    assert code == 0, lines
    assert "* accuracy          0.444 →  0.722  +0.278 (no interval)" in lines
    assert lines[-1] == (
        f"no interval: eval run {candidate_id} has no per-example scores; run `cra eval run` again"
    )
    code, lines = show(ws, str(candidate_id), "--differences")
    assert code == 1
    assert lines[-1] == (
        f"error: scope-v1 against base: no interval: eval run {candidate_id} has no "
        "per-example scores; run `cra eval run` again"
    )
    code, lines = show(ws, str(base_id))
    assert (code, lines[-1]) == (0, "a run of the base: it is the baseline, compared with nothing")


def test_an_unknown_metric_is_refused_naming_the_stages_metrics(ws: Workspace) -> None:
    """`--metric` must be one of the stage's metrics."""
    _, candidate_id, _ = scored_candidate(ws)
    code, lines = show(ws, str(candidate_id), "--differences", "--metric", "pass_at_1")
    assert code == 1
    assert lines[-1] == (
        "error: 'pass_at_1' is not a scope metric; its metrics: accuracy, relevant_recall, "
        "valid_rate"
    )


def test_differences_pair_each_example_with_its_prompt_reference_and_answers(
    ws: Workspace,
) -> None:
    """Each differing example carries its eval row's task text and reference and each run's
    recorded answer; a disagreement on another metric is listed on that metric."""
    scored_candidate(ws)
    evidence = version_evidence(ws, "scope-v1")
    found = differences(ws, evidence)
    assert found.metric == "accuracy"
    assert [e.line for e in found.better] == [2, 3, 4, 5]
    [worse] = found.worse
    assert worse.prompt == "Task 24: make feature 24 configurable."
    assert worse.reference == worse.baseline.answer
    assert worse.candidate.answer.startswith("[bold red]pwned[/]")
    assert (worse.candidate.counts, worse.baseline.counts) == ((0, 3), (3, 3))
    valid = differences(ws, evidence, "valid_rate")
    assert ([e.line for e in valid.better], [e.line for e in valid.worse]) == ([], [1])


def test_a_missing_answers_file_is_an_error_naming_it(ws: Workspace) -> None:
    """The drill-down never makes an answer up: without the run's answers.jsonl it refuses,
    naming the file."""
    _, candidate_id, _ = scored_candidate(ws)
    (ws.root / "evals" / str(candidate_id) / "answers.jsonl").unlink()
    with pytest.raises(EvidenceError, match=f"evals/{candidate_id}/answers.jsonl: cannot read"):
        differences(ws, version_evidence(ws, "scope-v1"))


def test_the_evidence_names_an_eval_run_under_way(ws: Workspace) -> None:
    """A queued run of the version is part of its evidence, with its state; the numbers stay
    those of its finished runs. `cra eval show` of the unfinished run compares nothing, and
    `--differences` on it says why in one line."""
    version, candidate_id, _ = scored_candidate(ws)
    ws.db["eval_runs"].insert(
        {
            "target": "scope-v1",
            "adapter_id": version.id,
            "stage": "scope",
            "base_model": "reasoning",
            "dataset_id": "scope-d1",
            "eval_set_id": 1,
            "eval_sha256": eval_row(ws, candidate_id).eval_sha256,
            "backend": "local",
            "status": "queued",
            "reason": "",
            "out_dir": "evals/9",
            "created_at": utc_now(),
            "created_by": "test",
        }
    )
    evidence = version_evidence(ws, "scope-v1")
    assert evidence.heading()[-1] == f"eval run {candidate_id + 1} of scope-v1: queued"
    assert evidence.candidate_eval is not None and evidence.candidate_eval.id == candidate_id
    assert evidence.paired
    queued = str(candidate_id + 1)
    code, lines = show(ws, queued)
    assert code == 0 and lines[-1] == f"answers: {ws.root / 'evals/9'}"
    code, lines = show(ws, queued, "--differences")
    assert code == 1
    assert lines[-1].endswith(
        f"eval run {queued} is not done (status failed): only a finished run has results to compare"
    )
