"""Replay: rows of earlier datasets mixed into a new train split (LoRA Training Strategy §10:
accumulate, never replace; 10-20% replay against catastrophic forgetting).

The target is `share` of the final train split, so r replayed rows go with M new ones when
r / (M + r) is closest to the share. Replayed rows must not break the domain cap either: each
domain may gain only what keeps it within `max_domain_share` of M + r. When the pool cannot
fill r under that rule, r shrinks until it can; the manifest records the share reached.
"""

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence

from engine.training_data.balance import exact_share
from engine.training_data.dataset_rows import DatasetRow


def replay_target(new_rows: int, share: float) -> int:
    """How many replayed rows make `share` of a train split with `new_rows` new ones."""
    target = exact_share(share)
    return round(target * new_rows / (1 - target))


def _rooms(
    new: Mapping[str, int], pool: Mapping[str, int], total: int, max_share: float
) -> dict[str, int]:
    limit = exact_share(max_share)
    return {domain: math.floor(limit * total) - new.get(domain, 0) for domain in pool}


def pick_replay(
    pool: Sequence[DatasetRow],
    new_rows: Sequence[DatasetRow],
    share: float,
    max_share: float,
    seed: str,
) -> list[DatasetRow]:
    """A seeded choice of rows from `pool` to replay with `new_rows` (see the module doc)."""
    new = Counter(row.item.domain for row in new_rows)
    available = Counter(row.item.domain for row in pool)
    count = replay_target(len(new_rows), share)
    while count > 0:
        rooms = _rooms(new, available, len(new_rows) + count, max_share)
        if sum(min(available[d], max(room, 0)) for d, room in rooms.items()) >= count:
            break
        count -= 1
    if count == 0:
        return []
    rooms = _rooms(new, available, len(new_rows) + count, max_share)
    order = sorted(pool, key=lambda row: row.order)
    random.Random(seed).shuffle(order)
    picked: list[DatasetRow] = []
    for row in order:
        if len(picked) == count:
            break
        if rooms[row.item.domain] > 0:
            rooms[row.item.domain] -= 1
            picked.append(row)
    return picked
