"""The power of the paired comparison the eval gate decides on, and its time on 500 examples.

Usage: .venv/bin/python bench/gate.py [--trials N] [--seed S]

Synthetic per-example scores, paired as an eval run's are (`engine.evaluation.paired`):

- counted metrics (scope accuracy and the like): each example has 3 to 12 reference items and
  a difficulty, the chance the baseline classifies one item right, drawn from Beta(2, 2); the
  candidate's chance is the baseline's plus the true gain (capped at 1). Each run draws its
  hits independently, so two equal models still disagree example by example;
- pass/fail metrics (pass@1, resolved rate): each task resolves with the baseline's chance,
  drawn from Beta(1, 3) (most tasks are hard), and with the candidate's, plus the true gain.

For n = 50, 200 and 500 examples and a true gain of 0, 0.03 and 0.08 it counts how often the
comparison calls a gain (the 95 % interval of the difference above zero), over `--trials`
independent eval sets. Targets (issue 16): a no-gain candidate is called better in at most 5 %
of trials; one decision on 500 examples takes under 1 s. Ratios below 1 meet the target.
"""

import argparse
import random
import statistics
import time

from engine.evaluation.paired import Counts, compare_counts

SIZES = (50, 200, 500)
GAINS = (0.0, 0.03, 0.08)
FALSE_PASS_TARGET = 0.05
DECIDE_TARGET_S = 1.0


def counted(rng: random.Random, n: int, gain: float) -> tuple[list[Counts], list[Counts]]:
    cand, base = [], []
    for _ in range(n):
        items = rng.randint(3, 12)
        chance = rng.betavariate(2, 2)
        better = min(1.0, chance + gain)
        base.append((sum(rng.random() < chance for _ in range(items)), items))
        cand.append((sum(rng.random() < better for _ in range(items)), items))
    return cand, base


def pass_fail(rng: random.Random, n: int, gain: float) -> tuple[list[Counts], list[Counts]]:
    cand, base = [], []
    for _ in range(n):
        chance = rng.betavariate(1, 3)
        base.append((int(rng.random() < chance), 1))
        cand.append((int(rng.random() < min(1.0, chance + gain)), 1))
    return cand, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"trials per cell: {args.trials}; share of trials the comparison calls a gain")
    print(f"{'metric':<28} {'n':>4}  " + "  ".join(f"gain {g:.2f}" for g in GAINS))
    worst_false_pass = 0.0
    for label, metric, draw in (
        ("accuracy (paired bootstrap)", "accuracy", counted),
        ("pass@1 (exact McNemar)", "pass_at_1", pass_fail),
    ):
        for n in SIZES:
            shares = []
            for gain in GAINS:
                passed = sum(
                    compare_counts(metric, *draw(rng, n, gain), seed=trial).gain
                    for trial in range(args.trials)
                )
                shares.append(passed / args.trials)
            worst_false_pass = max(worst_false_pass, shares[0])
            print(f"{label:<28} {n:>4}  " + "  ".join(f"{share:>9.3f}" for share in shares))
    timings = []
    cand, base = counted(rng, 500, 0.03)
    for _ in range(7):
        start = time.perf_counter()
        compare_counts("accuracy", cand, base)
        timings.append(time.perf_counter() - start)
    decide_s = statistics.median(timings)
    print(
        f"no-gain passes: worst {worst_false_pass:.3f} against the target "
        f"{FALSE_PASS_TARGET:.2f}: ratio {worst_false_pass / FALSE_PASS_TARGET:.2f}"
    )
    print(
        f"one decision on 500 examples: median {decide_s:.3f} s against the target "
        f"{DECIDE_TARGET_S:.1f} s: ratio {decide_s / DECIDE_TARGET_S:.2f}"
    )


if __name__ == "__main__":
    main()
