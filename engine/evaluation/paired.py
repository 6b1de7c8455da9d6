"""How sure two eval runs on one eval set are to differ, metric by metric, example by example.

A stage's metric is a micro-average: hits over out-of, summed over the set's examples
(`metrics.aggregate`). The candidate and its baseline answered the same examples, so the
difference is judged on the pairs, not on two independent means:

- **Paired bootstrap** for the counted metrics (file recall and precision, accuracy, the
  recalls, valid_rate): resample the examples with replacement, recompute both micro-averages
  on each resample, and take the percentiles of the difference. An example keeps its own
  weight (twenty reference files weigh twenty times one), precision's out-of may differ
  between the two runs, and no distribution is assumed. The generator is seeded, so a decision
  is reproducible.
- **Exact conditional (McNemar) interval** for pass/fail metrics (execute_code's pass@1,
  planning_dpo's resolved rate): only the discordant examples carry information; given d of
  them, the count b where only the candidate passed is Binomial(d, p) with p = 1/2 when the
  two are equally good. The Clopper-Pearson interval of p maps to the difference
  (b - c) / n = d/n (2p - 1). Its lower bound is above zero exactly when the exact McNemar test
  rejects at the same level, and it stays exact at the handful of discordant tasks a resolved
  rate sees, where a bootstrap of the difference is unreliable.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.training_data.reject_bound import binomial_tail

Method = Literal["paired bootstrap", "exact McNemar"]
Counts = tuple[int, int]
"""One example's (hits, out of) for one metric."""

BINARY_METRICS = frozenset({"pass_at_1", "resolved_rate"})
BOOTSTRAP_SAMPLES = 10_000


@dataclass(frozen=True)
class PairedDifference:
    """The candidate's metric minus the baseline's, with its two-sided interval."""

    metric: str
    method: Method
    n: int
    baseline: float
    candidate: float
    low: float
    high: float
    confidence: float
    better: int
    """Examples where the candidate scored higher than the baseline."""
    worse: int
    """Examples where the baseline scored higher than the candidate."""

    @property
    def delta(self) -> float:
        return self.candidate - self.baseline

    @property
    def gain(self) -> bool:
        """The candidate is better with the confidence asked for: the interval is above 0."""
        return self.low > 0

    def interval(self) -> str:
        """`+0.120 [+0.050, +0.190]`, the difference and its interval."""
        return f"{self.delta:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def _share(hits: int, out_of: int) -> float:
    return hits / out_of if out_of else 0.0


def score(counts: Counts) -> float:
    """One example's share, hits over out of (0 when it counts nothing)."""
    return _share(*counts)


def compare_counts(
    metric: str,
    candidate: Sequence[Counts],
    baseline: Sequence[Counts],
    confidence: float = 0.95,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> PairedDifference:
    """The paired difference of `metric` between two runs' per-example counts, the i-th of
    each being the same example."""
    if len(candidate) != len(baseline):
        raise ValueError(
            f"{metric}: {len(candidate)} candidate examples against {len(baseline)} baseline "
            "examples; a paired comparison needs the same examples"
        )
    if not candidate:
        raise ValueError(f"{metric}: no examples to compare")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    better = sum(score(c) > score(b) for c, b in zip(candidate, baseline, strict=True))
    worse = sum(score(c) < score(b) for c, b in zip(candidate, baseline, strict=True))
    if metric in BINARY_METRICS:
        return _mcnemar(metric, candidate, baseline, confidence, better, worse)
    return _bootstrap(metric, candidate, baseline, confidence, samples, seed, better, worse)


def _totals(counts: Sequence[Counts]) -> float:
    return _share(sum(hits for hits, _ in counts), sum(out for _, out in counts))


def _bootstrap(
    metric: str,
    candidate: Sequence[Counts],
    baseline: Sequence[Counts],
    confidence: float,
    samples: int,
    seed: int,
    better: int,
    worse: int,
) -> PairedDifference:
    table = np.array(
        [[c[0], c[1], b[0], b[1]] for c, b in zip(candidate, baseline, strict=True)],
        dtype=np.int64,
    )
    n = len(table)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(samples, n))
    # How often each resample drew each example, then one matrix product: the same sums as
    # table[picks].sum(axis=1), without the (samples, n, 4) gather (3x faster at n = 500).
    drawn = np.bincount((picks + (np.arange(samples) * n)[:, None]).ravel(), minlength=samples * n)
    sums = drawn.reshape(samples, n).astype(np.float64) @ table.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = np.where(sums[:, 1] > 0, sums[:, 0] / np.maximum(sums[:, 1], 1), 0.0)
        base = np.where(sums[:, 3] > 0, sums[:, 2] / np.maximum(sums[:, 3], 1), 0.0)
    alpha = 1 - confidence
    low, high = np.quantile(cand - base, [alpha / 2, 1 - alpha / 2])
    return PairedDifference(
        metric=metric,
        method="paired bootstrap",
        n=n,
        baseline=_totals(baseline),
        candidate=_totals(candidate),
        low=float(low),
        high=float(high),
        confidence=confidence,
        better=better,
        worse=worse,
    )


def _mcnemar(
    metric: str,
    candidate: Sequence[Counts],
    baseline: Sequence[Counts],
    confidence: float,
    better: int,
    worse: int,
) -> PairedDifference:
    for counts in (*candidate, *baseline):
        if counts not in ((0, 1), (1, 1)):
            raise ValueError(f"{metric} is pass/fail per example; got {counts} (hits, out of)")
    n = len(candidate)
    discordant = better + worse
    alpha = 1 - confidence
    if discordant:
        p_low, p_high = _clopper_pearson(better, discordant, alpha)
    else:
        p_low, p_high = 0.5, 0.5
    scale = discordant / n
    return PairedDifference(
        metric=metric,
        method="exact McNemar",
        n=n,
        baseline=_totals(baseline),
        candidate=_totals(candidate),
        low=scale * (2 * p_low - 1),
        high=scale * (2 * p_high - 1),
        confidence=confidence,
        better=better,
        worse=worse,
    )


def _clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """The two-sided Clopper-Pearson interval of a binomial share, k of n, at 1 - alpha."""
    low = 0.0 if k == 0 else _bisect(lambda p: binomial_tail(k, n, p) < alpha / 2)
    high = 1.0 if k == n else _bisect(lambda p: 1 - binomial_tail(k + 1, n, p) >= alpha / 2)
    return low, high


def _bisect(below: Callable[[float], bool]) -> float:
    """The p in [0, 1] where `below` turns from true to false (it is true up to there)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if below(middle):
            low = middle
        else:
            high = middle
    return (low + high) / 2
