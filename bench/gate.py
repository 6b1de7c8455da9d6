"""The eval gate's power on synthetic per-example scores, and the time it takes to decide.

Usage: .venv/bin/python bench/gate.py [--trials N] [--repeat N]

1. Power. Per trial, a scope eval set of n examples (n = 50, 200, 500): each example holds
   1 + Poisson(3) files to classify, about 40 % of them relevant; its difficulty varies (the
   chance a file is right is p ± N(0, 0.15) per example). The baseline classifies a file right
   with chance p (accuracy 0.60, relevant recall 0.70); the candidate with p + effect on
   accuracy and p on relevant recall, deciding like the baseline on 70 % of the files (the
   pairing the gate exploits). Each trial goes through `paired_metrics`' own comparison
   (`compare_counts`) and the gate's own rule (`gate.judge`, minimums off, the set at its
   target size), and counts how often the candidate passes: with effect 0 that is the false
   pass rate (target at most 5 %), with a true effect the power. The whole gate is judged at
   the default `[gate] tolerance` 0.02 and at 0: with tolerance 0 a primary metric that is
   unchanged in truth "falls" by noise in about half the trials, which stops the candidate
   (underpowered, or a regression when the interval confirms the drop). At the default the
   table also says how often a decision is a regression or underpowered. The same for
   pass/fail scores (execute_code's pass@1, the exact McNemar
   interval): pass@1 0.30 against 0.30 + effect.
2. Time to decide. A scratch workspace holds a scope candidate's and the base's eval runs of 500
   examples each, with their `eval_scores` rows; `decide` (load the scores, compare three
   metrics pair by pair, judge, record) is timed, median of --repeat (target under 1 s).

Prints each rate and time against its target.
"""

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.adapters.activation import AdapterVersion, version_by_id
from engine.core.config import DEFAULT_MINIMUMS, GateConfig
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.evaluation.gate import Power, decide, judge, metric_confidence
from engine.evaluation.paired import Counts, PairedDifference, compare_counts

SIZES = (50, 200, 500)
EFFECTS = (0.0, 0.05, 0.10)
SHARED = 0.7
"""The share of files the candidate decides as the baseline does (the pairing)."""
NO_MINIMUMS = {key: 0.0 for key in DEFAULT_MINIMUMS}
FALSE_PASS_TARGET = 0.05
DECIDE_TARGET_S = 1.0


def _pair(
    rng: np.random.Generator, chances: np.ndarray, effect: float, items: np.ndarray
) -> tuple[list[Counts], list[Counts]]:
    """Per example (hits, out of) of the baseline and of a candidate `effect` better, the
    candidate deciding like the baseline on SHARED of the items."""
    base_hits, cand_hits = [], []
    for chance, count in zip(chances, items, strict=True):
        draws = rng.random(count)
        own = np.where(rng.random(count) < SHARED, draws, rng.random(count))
        base_hits.append(int((draws < chance).sum()))
        cand_hits.append(int((own < min(1.0, chance + effect)).sum()))
    return (
        [(h, int(c)) for h, c in zip(cand_hits, items, strict=True)],
        [(h, int(c)) for h, c in zip(base_hits, items, strict=True)],
    )


def _scope_trial(rng: np.random.Generator, n: int, effect: float) -> list[PairedDifference]:
    files = 1 + rng.poisson(3, n)
    relevant = rng.binomial(files, 0.4)
    spread = rng.normal(0, 0.15, n)
    accuracy = _pair(rng, np.clip(0.6 + spread, 0, 1), effect, files)
    recall = _pair(rng, np.clip(0.7 + spread, 0, 1), 0.0, relevant)
    seed = int(rng.integers(2**31))
    level = metric_confidence("scope", GateConfig().confidence)
    return [
        compare_counts("accuracy", *accuracy, confidence=level, seed=seed),
        compare_counts("relevant_recall", *recall, confidence=level, seed=seed),
    ]


def _pass_fail_trial(rng: np.random.Generator, n: int, effect: float) -> list[PairedDifference]:
    chances = np.clip(0.3 + rng.normal(0, 0.15, n), 0, 1)
    candidate, baseline = _pair(rng, chances, effect, np.ones(n, dtype=int))
    return [compare_counts("pass_at_1", candidate, baseline)]


def _share(outcomes: Sequence[bool]) -> float:
    return sum(outcomes) / len(outcomes)


def power(trials: int) -> None:
    gates = {
        tolerance: GateConfig(tolerance=tolerance, minimums=NO_MINIMUMS)
        for tolerance in (0.0, 0.02)
    }
    rng = np.random.default_rng(16)
    print(f"power over {trials} trials a cell (minimums off, the set at its target size)")
    print(
        "  scope: accuracy 0.60 + effect, relevant recall 0.70 unchanged; "
        "paired bootstrap at 97.5 % a metric (95 % over the two)"
    )
    print(
        f"  {'n':>4} {'effect':>6}  {'accuracy gains':>14}  {'passes, tol 0':>13}  "
        f"{'passes, tol 0.02 (default)':>26}  {'regression':>10}  {'underpowered':>12}"
    )
    for n in SIZES:
        for effect in EFFECTS:
            gains, strict, passes, regressions, unsure = [], [], [], [], []
            for _ in range(trials):
                evidence = _scope_trial(rng, n, effect)
                gains.append(evidence[0].gain)
                zero = judge("scope", evidence, gates[0.0], Power(n=n, target=n))
                strict.append(zero.verdict == "pass")
                default = judge("scope", evidence, gates[0.02], Power(n=n, target=n))
                passes.append(default.verdict == "pass")
                regressions.append(default.verdict == "regression")
                unsure.append(default.verdict == "underpowered")
            mark = _mark(effect, _share(strict), _share(passes))
            print(
                f"  {n:>4} {effect:>6.2f}  {_share(gains):>14.1%}  {_share(strict):>13.1%}  "
                f"{_share(passes):>26.1%}  {_share(regressions):>10.1%}  "
                f"{_share(unsure):>12.1%}{mark}"
            )
    print("  execute_code: pass@1 0.30 + effect; exact McNemar, 95 %")
    print(f"  {'n':>4} {'effect':>6}  {'gate passes':>14}")
    for n in SIZES:
        for effect in EFFECTS:
            passes = [
                judge(
                    "execute_code",
                    _pass_fail_trial(rng, n, effect),
                    gates[0.02],
                    Power(n=n, target=n),
                ).verdict
                == "pass"
                for _ in range(trials)
            ]
            rate = _share(passes)
            print(f"  {n:>4} {effect:>6.2f}  {rate:>14.1%}{_mark(effect, rate, rate)}")


def _mark(effect: float, *rates: float) -> str:
    if effect:
        return ""
    worst = max(rates)
    verdict = "ok" if worst <= FALSE_PASS_TARGET else "MISSED"
    return (
        f"   false pass {worst:.1%}: {worst / FALSE_PASS_TARGET:.2f} of the 5 % target, {verdict}"
    )


def _insert_run(
    ws: Workspace, version: AdapterVersion | None, scores: dict[str, list[Counts]]
) -> None:
    n = len(next(iter(scores.values())))
    metrics = {
        name: sum(h for h, _ in counts) / max(1, sum(o for _, o in counts))
        for name, counts in scores.items()
    }
    eval_id = (
        ws.db["eval_runs"]
        .insert(
            {
                "target": "base" if version is None else version.name,
                "adapter_id": None if version is None else version.id,
                "stage": "scope",
                "base_model": "reasoning",
                "dataset_id": "scope-d1",
                "eval_sha256": "b" * 64,
                "backend": "local",
                "status": "done",
                "rows": n,
                "metrics_json": json.dumps(metrics),
                "reason": "",
                "out_dir": "evals/bench",
                "created_at": utc_now(),
                "created_by": "bench",
                "finished_at": utc_now(),
            }
        )
        .last_pk
    )
    ws.db["eval_scores"].insert_all(
        {
            "eval_id": eval_id,
            "key": f"line:{line}",
            "line": line,
            "counts_json": json.dumps({k: list(v[line - 1]) for k, v in sorted(scores.items())}),
        }
        for line in range(1, n + 1)
    )


def decide_time(repeat: int, n: int = 500) -> None:
    rng = np.random.default_rng(7)
    files = 1 + rng.poisson(3, n)
    relevant = rng.binomial(files, 0.4)
    spread = rng.normal(0, 0.15, n)
    accuracy = _pair(rng, np.clip(0.6 + spread, 0, 1), 0.05, files)
    recall = _pair(rng, np.clip(0.7 + spread, 0, 1), 0.0, relevant)
    valid = _pair(rng, np.full(n, 0.9), 0.0, np.ones(n, dtype=int))
    with tempfile.TemporaryDirectory(prefix="cra-bench-gate-") as scratch:
        root = Path(scratch) / "ws"
        root.mkdir()
        minimums = "".join(f'"{key}" = 0\n' for key in DEFAULT_MINIMUMS)
        (root / "cra.toml").write_text(f"[gate.minimums]\n{minimums}", encoding="utf-8")
        ws = Workspace.open(root)
        ws.db["datasets"].insert(
            {
                "id": "scope-d1",
                "stage": "scope",
                "base_model": "reasoning",
                "format": "sft",
                "path": "datasets/scope-d1",
                "created_at": utc_now(),
                "manifest_sha256": "0" * 64,
            }
        )
        version_id = (
            ws.db["adapter_versions"]
            .insert(
                {
                    "stage": "scope",
                    "version": 1,
                    "name": "scope-v1",
                    "status": "candidate",
                    "base_model": "reasoning",
                    "base_model_path": "models/base",
                    "rank": 16,
                    "path": "adapters/scope/v1",
                    "created_at": utc_now(),
                }
            )
            .last_pk
        )
        version = version_by_id(ws, version_id)
        for side, row in ((1, None), (0, version)):
            scores = {"accuracy": accuracy[side], "relevant_recall": recall[side]}
            _insert_run(ws, row, scores | {"valid_rate": valid[side]})
        times, verdict = [], ""
        for _ in range(repeat):
            start = time.perf_counter()
            verdict = decide(ws, "scope-v1", operator="bench")["decision"]
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    state = "ok" if median < DECIDE_TARGET_S else "MISSED"
    print(
        f"decide on {n} examples (3 metrics, {verdict}): median {median:.3f} s over {repeat}, "
        f"max {max(times):.3f} s; {median / DECIDE_TARGET_S:.2f} of the 1 s target, {state}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    decide_time(args.repeat)
    power(args.trials)


if __name__ == "__main__":
    main()
