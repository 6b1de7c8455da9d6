"""A scope candidate and the base scored for real on a real frozen eval set: the rows the eval
worker would leave (eval runs, `eval_scores`, `evals/<id>/answers.jsonl`), each answer scored by
`metrics.score_row` against its row's reference, so the evidence tests read honest records.

The set holds the 6 newest of 30 scope tasks (`[evaluation] max_eval_share` 0.2 of them, under
scope's target: underpowered). The base classifies every file irrelevant except on line 1,
which it gets right; the candidate gets lines 2 to 5 right, answers line 1 with hostile text
(Rich markup, an ANSI escape: not JSON, so it names nothing) and line 6 as the base does.
"""

import json
from datetime import UTC, datetime, timedelta

from eval_fixtures import add_version

from engine.adapters.activation import AdapterVersion
from engine.core.workspace import Workspace
from engine.evaluation.eval_set import EvalSet, build_eval_set, load_eval_set, newest_eval_set
from engine.evaluation.example_scores import ExampleScore, line_key
from engine.evaluation.gate import BASE, decide
from engine.evaluation.metrics import aggregate, score_row
from engine.training_data.items import Message, TrainingItem
from engine.training_data.store import add_items

STAGE = "scope"
HOSTILE = "[bold red]pwned[/] \x1b[2J\x1b]0;owned\x07 done"
AT = "2026-11-21T07:30:00Z"
_START = datetime(2025, 1, 1, tzinfo=UTC)


def _reference(n: int) -> dict[str, list[str]]:
    return {
        "relevant": [f"src/feature{n}.py"],
        "supporting": [f"src/helpers{n}.py"],
        "irrelevant": [f"docs/notes{n}.md"],
    }


def _item(n: int) -> TrainingItem:
    return TrainingItem(
        stage=STAGE,
        kind="sft",
        source="synthetic",
        origin="commit",
        repo="lib",
        domain="dom",
        task_key=f"task-{n}",
        task_date=(_START + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        prompt=[
            Message(role="system", content="You classify the candidate files of a task."),
            Message(role="user", content=f"Task {n}: make feature {n} configurable."),
        ],
        chosen=[Message(role="assistant", content=json.dumps(_reference(n)))],
    )


def _all_irrelevant(reference: str) -> str:
    files = [path for paths in json.loads(reference).values() for path in paths]
    return json.dumps({"relevant": [], "supporting": [], "irrelevant": files})


def _answers(eval_set: EvalSet) -> dict[str, list[str]]:
    """Each run's answer to each row, in line order."""
    references = [row.reference for row in eval_set.rows]
    base = [references[0], *(_all_irrelevant(ref) for ref in references[1:])]
    candidate = [HOSTILE, *references[1:5], base[5]]
    return {BASE: base, "candidate": candidate}


def _run(
    ws: Workspace,
    eval_set: EvalSet,
    version: AdapterVersion | None,
    answers: list[str],
    scored: bool,
) -> int:
    """A finished eval run of `version` (None: the base) with `answers`, scored per row as the
    worker scores them; `scored` False leaves out its per-example scores (a run from before
    they were recorded)."""
    eval_id = (
        ws.db["eval_runs"]
        .insert(
            {
                "target": BASE if version is None else version.name,
                "adapter_id": None if version is None else version.id,
                "stage": STAGE,
                "base_model": "reasoning",
                "dataset_id": "scope-d1",
                "eval_set_id": eval_set.id,
                "eval_sha256": eval_set.sha256,
                "backend": "local",
                "status": "done",
                "rows": eval_set.size,
                "reason": "",
                "out_dir": "",
                "created_at": AT,
                "created_by": "test",
                "finished_at": AT,
            }
        )
        .last_pk
    )
    out = ws.root / "evals" / str(eval_id)
    out.mkdir(parents=True)
    scores, examples, lines = [], [], []
    for row, answer in zip(eval_set.rows, answers, strict=True):
        score = score_row(STAGE, answer, row.reference)
        scores.append(score)
        examples.append(
            ExampleScore(
                key=line_key(row.line),
                line=row.line,
                example_id=row.example_id,
                task=None,
                valid=score.valid,
                counts={**score.counts, "valid_rate": (int(score.valid), 1)},
            )
        )
        record = {"line": row.line, "example_id": row.example_id, "answer": answer}
        lines.append(json.dumps({**record, "valid": score.valid}))
    (out / "answers.jsonl").write_text("".join(line + "\n" for line in lines))
    (out / "harness.json").write_text("[]\n")
    with ws.db.conn:
        if scored:
            ws.db["eval_scores"].insert_all(example.record(eval_id) for example in examples)
        ws.db["eval_runs"].update(
            eval_id,
            {
                "out_dir": f"evals/{eval_id}",
                "metrics_json": json.dumps(aggregate(STAGE, scores), sort_keys=True),
            },
        )
    return eval_id


def unscored_candidate(ws: Workspace) -> AdapterVersion:
    """scope-v1, a candidate on dataset scope-d1, and scope's frozen eval set of 6 rows (target
    200); nothing evaluated yet."""
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
    add_items(ws.db, [_item(n) for n in range(30)])
    build_eval_set(ws, STAGE)
    return add_version(ws, STAGE, 1, dataset_id="scope-d1")


def scored_candidate(ws: Workspace, scored: bool = True) -> tuple[AdapterVersion, int, int]:
    """scope-v1, a candidate, and the base, both scored on scope's frozen eval set of 6 rows
    (target 200), and, when scored example by example, the gate's real decision on them:
    underpowered. Returns the version and the candidate's and the base's eval run ids."""
    version = unscored_candidate(ws)
    record = newest_eval_set(ws, STAGE)
    assert record is not None
    eval_set = load_eval_set(ws, record.id)
    answers = _answers(eval_set)
    base_id = _run(ws, eval_set, None, answers[BASE], scored)
    candidate_id = _run(ws, eval_set, version, answers["candidate"], scored)
    if scored:
        decide(ws, "scope-v1", operator="ana")
    return version, candidate_id, base_id
