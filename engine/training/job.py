"""What the worker hands a backend, and what a backend hands back."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.training.contract import RunSpec


@dataclass(frozen=True)
class Job:
    """What a backend trains: the spec, its resolved paths (the adapter it continues, if any),
    the rows and where to resume."""

    spec: RunSpec
    run_dir: Path
    base_path: Path
    rows: list[dict[str, Any]]
    resume_from: Path | None
    resume_step: int
    continues: Path | None = None


@dataclass(frozen=True)
class Trained:
    """What a backend hands back once its trainer returns."""

    model: Any
    tokenizer: Any
    stopped: bool
    steps: int
    max_steps: int
    final_loss: float | None
    runtime_s: float
    effective: dict[str, str]
