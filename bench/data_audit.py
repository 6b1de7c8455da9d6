"""Time `cra data audit` against the floor of reading the same rows.

Usage: .venv/bin/python bench/data_audit.py [--items N] [--repeat N]

Fills a scratch workspace with N items (default 20,000) spread over the stages as derivation
spreads them, with prompts the size real ones have (attrs and structlog, issue 15): task
analysis about 1 KB, scope 8 KB, precision 15 KB, execute_code, meta_plan and step_plan 60 KB,
CodeFavor pairs 25 KB; one prompt in ten carries a trailer with an e-mail, one scope answer in
five has nothing to change, one CodeFavor pair in three differs only in a docstring. Then,
alternating: the floor (stream the audit's columns and parse each row's JSON, nothing else) and
`audit(ws)`; medians and their ratio.
"""

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from engine.core.workspace import Workspace
from engine.training_data.audit import audit
from engine.training_data.items import Message, TrainingItem
from engine.training_data.store import insert_items

SIZES = {
    "task_analysis": 1_000,
    "scope": 8_000,
    "precision": 15_000,
    "meta_plan": 60_000,
    "step_plan": 60_000,
    "test_plan": 3_000,
    "execute_code": 60_000,
}
SHARES = {"task_analysis": 1, "scope": 1, "precision": 1, "meta_plan": 1, "step_plan": 3}
SHARES |= {"test_plan": 1, "execute_code": 1}
CODEFAVOR_SHARE = 0.6
WORDS = ("def", "return", "self", "value", "node", "tree", "path", "file", "part", "step")
OLD = 'def f(x):\n    """Return x."""\n    return x\n'


def pool_text(rng: random.Random, size: int) -> str:
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        lines.append("    " * rng.randint(0, 2) + line)
        total += len(line) + 1
    return "\n".join(lines)


POOL = pool_text(random.Random(0), 400_000)


def text(rng: random.Random, size: int) -> str:
    """`size` characters of code-like lines, a different stretch of the pool each time."""
    start = rng.randrange(len(POOL) - size)
    return POOL[start : start + size]


def answer(stage: str, n: int) -> str:
    if stage == "scope":
        relevant = [] if n % 5 == 0 else [f"pkg/m{n}.py"]
        return json.dumps({"relevant": relevant, "supporting": ["pkg/u.py"], "irrelevant": []})
    if stage == "step_plan":
        return json.dumps({"steps": [{"description": f"Add g{n} to f", "file": "pkg/m.py"}]})
    if stage == "meta_plan":
        return json.dumps({"summary": "s", "parts": [{"id": "p1", "title": f"Add g{n}"}]})
    if stage == "execute_code":
        return json.dumps([{"path": "pkg/m.py", "search": "return x", "replace": f"return {n}"}])
    return json.dumps({"files": [f"pkg/m{n}.py"], "symbols": {f"pkg/m{n}.py": ["f"]}})


def item(rng: random.Random, n: int) -> TrainingItem:
    stage = rng.choices(list(SHARES), weights=list(SHARES.values()))[0]
    codefavor = stage == "execute_code" and rng.random() < CODEFAVOR_SHARE
    task = f"Task {n}: make f handle case {n}"
    if n % 10 == 0:
        task += f"\n\nCo-authored-by: Jane Doe <jane{n}@mail.org>"
    size = 25_000 if codefavor else SIZES[stage]
    user = f"Files before the change:\n{text(rng, size)}\n\nTask:\n{task}"
    new = OLD.replace("Return x.", "Return x") if n % 3 == 0 else OLD.replace("x\n", "x + 1\n")
    return TrainingItem(
        stage=stage,
        kind="preference" if codefavor else "sft",
        source="synthetic",
        origin="codefavor" if codefavor else "commit",
        repo=f"repo{n % 7}",
        domain=f"dom{n % 5}",
        task_key=f"task-{n}",
        task_date="2025-01-01T00:00:00Z",
        package_digest=f"{n % 3:064x}",
        sha=f"{n:040x}",
        prompt=[
            Message(role="system", content="You answer with JSON only."),
            Message(role="user", content=user),
        ],
        chosen=[Message(role="assistant", content=new if codefavor else answer(stage, n))],
        rejected=[Message(role="assistant", content=OLD)] if codefavor else None,
    )


def fill(ws: Workspace, count: int) -> None:
    rng = random.Random(15)
    ws.db.execute("BEGIN IMMEDIATE")
    insert_items(ws.db, (item(rng, n) for n in range(count)))
    ws.db.execute("COMMIT")


def floor(ws: Workspace) -> int:
    """Stream the audit's columns and parse each row's JSON: what any audit must do."""
    seen = 0
    for row in ws.db.query(
        "SELECT id, stage, source, origin, repo, package_digest, sha, content_hash, "
        "prompt_tokens, prompt_json, chosen_json, rejected_json FROM examples ORDER BY id"
    ):
        json.loads(row["prompt_json"])
        json.loads(row["chosen_json"])
        if row["rejected_json"] is not None:
            json.loads(row["rejected_json"])
        seen += 1
    return seen


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cra-bench-audit-") as scratch:
        ws = Workspace.open(Path(scratch) / "ws")
        start = time.perf_counter()
        fill(ws, args.items)
        size = (ws.root / "cra.sqlite").stat().st_size
        print(f"filled {args.items:,} items ({size / 2**20:.0f} MiB) in {timed_since(start):.1f} s")
        floors, audits = [], []
        for _ in range(args.repeat):
            floors.append(timed(lambda: floor(ws)))
            audits.append(timed(lambda: audit(ws)))
        report = audit(ws)
        degenerate = {stage.stage: stage.degenerate for stage in report.stages}
        print(f"degenerate by stage: {degenerate}")
        low, full = statistics.median(floors), statistics.median(audits)
        print(f"floor (read and parse): median {low:.2f} s over {args.repeat}")
        print(f"audit: median {full:.2f} s ({full / low:.1f}x the floor)")
        print(f"per 100,000 items: about {full * 100_000 / args.items:.0f} s")


def timed_since(start: float) -> float:
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
