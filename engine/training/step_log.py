"""The trainer callback that writes `metrics.jsonl` and honours a `STOP` request.

Each logged training step becomes one `StepRecord` line, flushed at once, so the console can
draw the curve while the run goes on. A resumed run first drops the lines past the checkpoint
it resumes from (they were trained again), so the file holds each step once, in order; its
elapsed time continues from the last kept line. When `STOP` appears, the step that sees it is
checkpointed and training ends there.
"""

import os
import secrets
import time
from pathlib import Path
from typing import IO

import torch
from pydantic import ValidationError
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from engine.training.contract import METRICS_FILE, STOP_FILE, StepRecord

_MB = 2**20


class StepLog(TrainerCallback):
    """Appends a `StepRecord` to `run_dir/metrics.jsonl` per log; stops on `run_dir/STOP`."""

    def __init__(self, run_dir: Path, resume_step: int) -> None:
        self.metrics_path = run_dir / METRICS_FILE
        self.stop_path = run_dir / STOP_FILE
        self.elapsed_before = trim_metrics(self.metrics_path, resume_step)
        self.stop_requested = False
        self._file: IO[str] | None = None
        self._begin = self._last_time = time.monotonic()
        self._begin_step = resume_step
        self._last_tokens = 0

    def elapsed(self) -> float:
        """Wall time spent training, this session and the sessions before it."""
        return self.elapsed_before + time.monotonic() - self._begin

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: object,
    ) -> None:
        self._begin = self._last_time = time.monotonic()
        self._begin_step = state.global_step
        self._last_tokens = state.num_input_tokens_seen
        self._file = self.metrics_path.open("a", encoding="utf-8")

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: object,
    ) -> None:
        if self.stop_path.exists() and not self.stop_requested:
            print(f"{STOP_FILE} found at step {state.global_step}: checkpointing and stopping")
            self.stop_requested = True
            control.should_save = True
            control.should_training_stop = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: object,
    ) -> None:
        if not logs or "loss" not in logs or self._file is None:
            return
        now = time.monotonic()
        tokens = state.num_input_tokens_seen
        session_steps = state.global_step - self._begin_step
        record = StepRecord(
            step=state.global_step,
            max_steps=state.max_steps,
            epoch=state.epoch,
            loss=logs["loss"],
            learning_rate=logs.get("learning_rate"),
            grad_norm=logs.get("grad_norm"),
            tokens_per_s=(tokens - self._last_tokens) / (now - self._last_time)
            if now > self._last_time
            else None,
            memory_mb=memory_mb(),
            elapsed_s=self.elapsed_before + now - self._begin,
            eta_s=(now - self._begin) / session_steps * (state.max_steps - state.global_step)
            if session_steps > 0
            else None,
            reward_margin=logs.get("rewards/margins"),
            reward_accuracy=logs.get("rewards/accuracies"),
        )
        self._file.write(record.model_dump_json() + "\n")
        self._file.flush()
        self._last_time, self._last_tokens = now, tokens

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: object,
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def trim_metrics(path: Path, last_step: int) -> float:
    """Keep the records of `path` up to `last_step` (a line cut short by a kill goes too) and
    return the elapsed time of the last one kept; the file is rewritten beside and renamed."""
    if not path.exists():
        return 0.0
    kept: list[tuple[str, StepRecord]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = StepRecord.model_validate_json(line)
        except ValidationError:
            print(f"{path.name}: dropping a line that is not a step record: {line[:80]!r}")
            continue
        if record.step <= last_step:
            kept.append((line, record))
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    staging.write_text("".join(line + "\n" for line, _ in kept), encoding="utf-8")
    staging.replace(path)
    return kept[-1][1].elapsed_s if kept else 0.0


def memory_mb() -> float:
    """GPU memory reserved by torch when CUDA is in use, else this process's resident set."""
    if torch.cuda.is_available():
        return torch.cuda.memory_reserved() / _MB
    with Path("/proc/self/statm").open() as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / _MB
