"""Domain balance of a training split: no domain above `max_domain_share` (LoRA Training Strategy
§6.1).

The biggest domains are cut down to one cap `c`, the largest with c <= share x sum(min(n_d, c)):
after the cut each domain holds at most c rows of that total. Which rows stay is a seeded
sample, so curating the same data twice keeps the same rows. With fewer than 1/share domains
no cap works, and curation is refused rather than training on a lopsided set.
"""

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from fractions import Fraction

from engine.training_data.curation_errors import CurationRefused
from engine.training_data.dataset_rows import DatasetRow


def exact_share(share: float) -> Fraction:
    """`share` as the decimal the operator wrote (0.2 is 1/5, not the nearest binary float)."""
    return Fraction(repr(share))


def domain_cap(counts: Mapping[str, int], share: float) -> int | None:
    """The largest per-domain cap that keeps every domain within `share` of the total after
    cutting; None when none does."""
    limit = exact_share(share)
    for cap in range(max(counts.values(), default=0), 0, -1):
        if cap <= limit * sum(min(n, cap) for n in counts.values()):
            return cap
    return None


def balance(rows: Sequence[DatasetRow], share: float, seed: str) -> tuple[list[DatasetRow], int]:
    """`rows` with the biggest domains cut to the cap (in `DatasetRow.order`), and how many were
    cut."""
    by_domain: dict[str, list[DatasetRow]] = defaultdict(list)
    for row in rows:
        by_domain[row.item.domain].append(row)
    if not by_domain:
        return [], 0
    cap = domain_cap({domain: len(group) for domain, group in by_domain.items()}, share)
    if cap is None:
        needed = math.ceil(1 / exact_share(share))
        raise CurationRefused(
            f"the train rows come from {len(by_domain)} domain(s) "
            f"({', '.join(sorted(by_domain))}): none can stay within {share:g} of train "
            f"([curation] max_domain_share = {share:g}); add data from at least {needed} "
            "domains or raise the limit"
        )
    kept: list[DatasetRow] = []
    for domain in sorted(by_domain):
        group = sorted(by_domain[domain], key=lambda row: row.order)
        if len(group) > cap:
            group = random.Random(f"{seed}:{domain}").sample(group, cap)
        kept.extend(group)
    kept.sort(key=lambda row: row.order)
    return kept, len(rows) - len(kept)
