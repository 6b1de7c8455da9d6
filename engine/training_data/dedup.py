"""Exact and near duplicates among a stage's rows (CommitChronicle: removed within and across
splits, docs/background.md).

Exact duplicates are rows with the same line, hence the same sha256. Near duplicates are rows
whose word shingles overlap at or above a Jaccard threshold: MinHash LSH finds the candidate
pairs and the exact Jaccard of the shingle sets decides, so the LSH parameters only trade
speed for recall (shingles are hashed with CRC-32: fast, and a rare collision only adds a
candidate). Rows are judged oldest first, so the oldest of a group is the one kept.
"""

import zlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from engine.training_data.dataset_rows import DatasetRow

if TYPE_CHECKING:
    from datasketch import MinHash, MinHashLSH

SHINGLE_WORDS = 3
NUM_PERM = 128
_TARGET_RECALL = 0.95


def drop_exact(rows: Sequence[DatasetRow], known: Iterable[str]) -> tuple[list[DatasetRow], int]:
    """`rows` (oldest first) less those whose line equals an earlier row's or one of `known`
    (hashes of rows already in datasets); and how many were dropped."""
    seen = set(known)
    kept: list[DatasetRow] = []
    for row in rows:
        if row.digest in seen:
            continue
        seen.add(row.digest)
        kept.append(row)
    return kept, len(rows) - len(kept)


def shingles(text: str) -> frozenset[str]:
    """The text's runs of `SHINGLE_WORDS` consecutive words (one run when it is shorter)."""
    words = text.split()
    if len(words) <= SHINGLE_WORDS:
        return frozenset([" ".join(words)]) if words else frozenset()
    runs = zip(*(words[i:] for i in range(SHINGLE_WORDS)), strict=False)
    return frozenset(map(" ".join, runs))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b)


def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band): the most rows per band (fewest false candidates) that still
    makes a pair at `threshold` a candidate with probability `_TARGET_RECALL`; at least two
    bands, as datasketch requires."""
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= _TARGET_RECALL:
            return bands, rows
    return num_perm, 1


def _minhashes(all_sets: Sequence[frozenset[str]]) -> "list[MinHash]":
    """One MinHash per shingle set. datasketch is imported here, not at the top: it loads
    scipy (about 0.4 s), which every module that imports curation would otherwise pay."""
    from datasketch import MinHash

    return MinHash.bulk(
        [[s.encode("utf-8") for s in sets] for sets in all_sets],
        num_perm=NUM_PERM,
        hashfunc=zlib.crc32,
    )


def _index(threshold: float) -> "MinHashLSH":
    """An empty MinHash LSH index tuned for `threshold` (see `lsh_params`)."""
    from datasketch import MinHashLSH

    return MinHashLSH(threshold=threshold, num_perm=NUM_PERM, params=lsh_params(threshold))


def drop_near_to(
    rows: Sequence[DatasetRow], others: Sequence[str], threshold: float
) -> tuple[list[DatasetRow], int]:
    """`rows` less each one at or above `threshold` Jaccard similarity to one of the `others`
    texts (the rows are not compared with each other); and how many were dropped."""
    if not rows or not others:
        return list(rows), 0
    other_sets = [shingles(text) for text in others]
    row_sets = [shingles(row.text) for row in rows]
    hashes = _minhashes(other_sets + row_sets)
    lsh = _index(threshold)
    for index, sets in enumerate(other_sets):
        if sets:
            lsh.insert(index, hashes[index])
    kept: list[DatasetRow] = []
    for offset, (row, sets) in enumerate(zip(rows, row_sets, strict=True)):
        found = lsh.query(hashes[len(other_sets) + offset]) if sets else []
        if not any(jaccard(other_sets[key], sets) >= threshold for key in found):
            kept.append(row)
    return kept, len(rows) - len(kept)


def drop_near(
    rows: Sequence[DatasetRow], earlier: Sequence[str], threshold: float
) -> tuple[list[DatasetRow], int]:
    """`rows` (oldest first) less each one at or above `threshold` Jaccard similarity to an
    earlier kept row or to one of the `earlier` texts (rows already in datasets); and how many
    were dropped. A row with no words is compared with nothing."""
    row_sets = [shingles(row.text) for row in rows]
    earlier_sets = [shingles(text) for text in earlier]
    all_sets = earlier_sets + row_sets
    hashes = _minhashes(all_sets)
    lsh = _index(threshold)
    stored: dict[int, frozenset[str]] = {}

    def similar(index: int) -> bool:
        found = lsh.query(hashes[index])
        return any(jaccard(stored[key], all_sets[index]) >= threshold for key in found)

    for index, sets in enumerate(earlier_sets):
        if sets:
            lsh.insert(index, hashes[index])
            stored[index] = sets
    kept: list[DatasetRow] = []
    for offset, row in enumerate(rows):
        index = len(earlier_sets) + offset
        sets = all_sets[index]
        if sets and similar(index):
            continue
        if sets:
            lsh.insert(index, hashes[index])
            stored[index] = sets
        kept.append(row)
    return kept, len(rows) - len(kept)
