"""Precision's curriculum (LoRA Training Strategy §1, §7.2: SFT + curriculum): train rows ordered
easy to hard.

A precision example tiers every candidate symbol of the files in scope as primary, supporting or
excluded. Its difficulty is the number of candidate symbols it tiers (more to weigh is harder),
then the number of primary symbols (more to find is harder), then the item id for a stable
order. Curation writes a precision dataset's train.jsonl in that order and records the measure
in the manifest; the trainer reads such a stage's rows sequentially (`train_sampling_strategy`
"sequential" instead of the Trainer's default random sampler), so the order survives training.
"""

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from engine.core.stages import Stage
from engine.training_data.answers import parse_answer
from engine.training_data.curation_errors import CurationRefused
from engine.training_data.dataset_rows import DatasetRow

CURRICULUM_STAGES: tuple[Stage, ...] = ("precision",)
MEASURE = "candidate symbols tiered, then primary symbols, then item id; fewer is easier"
TIERS = ("primary", "supporting", "excluded")


class Curriculum(BaseModel):
    """How a dataset's train rows are ordered for training."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order: Literal["easy_to_hard"] = "easy_to_hard"
    measure: str = MEASURE


def difficulty(row: DatasetRow) -> tuple[int, int, int]:
    """(candidate symbols, primary symbols, item id) of a precision row's answer."""
    answer = parse_answer(row.item.chosen[-1].content)
    counts = []
    for tier in TIERS:
        by_file = answer.get(tier, {}) if isinstance(answer, dict) else None
        if not isinstance(by_file, dict) or not all(isinstance(v, list) for v in by_file.values()):
            raise CurationRefused(
                f"example {row.example_id}: its precision answer is not the stage's "
                f"{{tier: {{path: [symbols]}}}} shape; the curriculum cannot weigh it"
            )
        counts.append(sum(len(names) for names in by_file.values()))
    return sum(counts), counts[0], row.example_id


def easy_to_hard(rows: Sequence[DatasetRow]) -> list[DatasetRow]:
    """`rows` from easiest to hardest by `difficulty`."""
    return sorted(rows, key=difficulty)
