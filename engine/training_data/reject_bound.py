"""How sure a spot-check is that a stage's reject rate is above its limit.

A round of 10-20 items (LoRA Training Strategy §7.2, §9.3) is a small sample: 1 reject of 4 is 25 %,
yet says little about the stage. The review gate therefore blocks only when the sample shows, at a
configured confidence, that the stage's true reject rate is above the limit: when the one-sided
Clopper-Pearson lower bound of the rate is above it. That bound is the rate p at which k or more
rejects of n would be seen with probability 1 - confidence, found here by bisection on the
binomial tail (the standard library has no beta quantile; scipy is not a dependency).
"""

import math


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space so large n cannot overflow."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if k == 0 or p >= 1:
        return 1.0
    if p <= 0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = (
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * log_p
        + (n - i) * log_q
        for i in range(k, n + 1)
    )
    return min(1.0, math.fsum(math.exp(term) for term in terms))


def reject_rate_lower_bound(rejected: int, decided: int, confidence: float) -> float:
    """The one-sided Clopper-Pearson lower bound of the reject rate at `confidence`: 0 with no
    rejects, else the p where P(X >= rejected) = 1 - confidence (the tail grows with p)."""
    if decided < 1 or not 0 <= rejected <= decided:
        raise ValueError(
            f"need 0 <= rejected <= decided and decided >= 1, got {rejected}/{decided}"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if rejected == 0:
        return 0.0
    alpha = 1 - confidence
    low, high = 0.0, 1.0
    for _ in range(100):
        middle = (low + high) / 2
        if binomial_tail(rejected, decided, middle) < alpha:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def blocks(rejected: int, decided: int, limit: float, confidence: float) -> bool:
    """Whether `rejected` of `decided` show, at `confidence`, a reject rate above `limit`:
    k or more rejects would be seen with probability below 1 - confidence were the rate
    exactly `limit` (the same test as the lower bound above `limit`, without the bisection)."""
    return rejected > 0 and binomial_tail(rejected, decided, limit) < 1 - confidence


def rejects_that_block(decided: int, limit: float, confidence: float) -> int | None:
    """The fewest rejects of `decided` that block; None when even all of them would not."""
    return next((k for k in range(1, decided + 1) if blocks(k, decided, limit, confidence)), None)
