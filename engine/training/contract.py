"""What a training run is asked to do and what its worker process leaves behind.

The console and the worker (`python -m engine.training.worker RUN_DIR`) share only files in the
run's folder, so a worker outlives the console and a console reattaches to any worker:

- `spec.json` (`RunSpec`): written by the console before the worker starts; never changed.
- `backend.json` (`BackendChoice`): the backend the worker picked and why, written before it
  loads the model, so the run names its backend while it trains (a resume writes it again).
- `unsloth_compiled_cache/`: the trainer code Unsloth generates, on the Unsloth backend only
  (the worker points `UNSLOTH_COMPILE_LOCATION` here; Unsloth's default is the current folder,
  the workspace).
- `metrics.jsonl`: one `StepRecord` per logged step, appended and flushed as they come.
- `train.log`: the worker's raw output (the job system's log file).
- `checkpoints/checkpoint-<step>/`: every `save_steps` steps; a resume continues from the newest.
- `STOP`: the console asks for a stop by creating it; the worker saves a checkpoint at the next
  step and exits with `result.json` status `stopped`.
- `adapter/`: the final PEFT adapter (written beside its name and renamed into place). An
  execute_code DPO run continues the stage's SFT adapter (`RunSpec.continues`, LoRA Training
  Strategy §1: SFT then DPO on one adapter): its adapter is that one's weights trained further.
- `result.json` (`RunResult`): written last; a worker that exits without it failed.

Hyperparameter defaults follow LoRA Training Strategy §7.3: QLoRA 4-bit NF4 on a GPU, alpha 2 ×
rank, lr 2e-4 cosine, adamw_8bit, dropout 0, bf16, all seven linear projections, eos `<|im_end|>`.
On the CPU backend, quantisation, the 8-bit optimiser and bf16 are not available and the
backend says what it used instead in `RunResult.effective`.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.core.stages import (
    BASE_TUNE_RULE,
    BASE_TUNE_STAGES,
    CHAT_END_TOKEN,
    BaseModelKind,
    Stage,
)

SPEC_FILE = "spec.json"
BACKEND_FILE = "backend.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
CHECKPOINTS_DIR = "checkpoints"
STOP_FILE = "STOP"
ADAPTER_DIR = "adapter"
ADAPTER_CONFIG = "adapter_config.json"
RESULT_FILE = "result.json"
UNSLOTH_CACHE_DIR = "unsloth_compiled_cache"

Method = Literal["sft", "dpo"]
Backend = Literal["unsloth", "trl"]
BackendSetting = Literal["auto", "unsloth", "trl"]
"""`[training] backend`; `auto` trains on the set the machine has (`training_set.TrainingSet`)."""
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hyper(_Model):
    """LoRA and optimiser settings; every field overridable, every value checked."""

    rank: int = Field(default=16, ge=1, le=512)
    alpha: int | None = Field(default=None, ge=1, description="None: 2 × rank")
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(default=TARGET_MODULES, min_length=1)
    learning_rate: float = Field(default=2e-4, gt=0, le=1)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    optimizer: Literal["adamw_8bit", "adamw_torch"] = "adamw_8bit"
    epochs: float = Field(default=2, gt=0, le=10)
    max_steps: int | None = Field(default=None, ge=1, description="overrides epochs")
    batch_size: int = Field(default=1, ge=1)
    gradient_accumulation: int = Field(default=4, ge=1)
    max_length: int = Field(default=2048, ge=16)
    quantize_4bit: bool = True
    bf16: bool = True
    seed: int = 0
    logging_steps: int = Field(default=1, ge=1)
    save_steps: int = Field(default=50, ge=1)
    dpo_beta: float = Field(default=0.1, gt=0)

    @property
    def lora_alpha(self) -> int:
        return self.alpha if self.alpha is not None else 2 * self.rank


class RunSpec(_Model):
    """One training run: which dataset trains which stage's adapter on which frozen base."""

    schema_version: Literal[1] = 1
    stage: Stage
    method: Method
    base_model: BaseModelKind
    base_model_path: str = Field(
        min_length=1, description="a local folder; relative paths are against the workspace"
    )
    base_version: str | None = Field(
        default=None,
        description="the registered base version the folder held ({role}-base-v{N}); None in "
        "specs written before bases were versioned",
    )
    dataset_id: str = Field(min_length=1)
    dataset_path: str = Field(min_length=1, description="the dataset folder, workspace-relative")
    dataset_sha256: str = Field(description="sha256 of the dataset's manifest.json")
    eos_token: str = CHAT_END_TOKEN
    backend: BackendSetting = Field(
        default="auto",
        description="[training] backend when the run was specified (auto in older specs)",
    )
    hyper: Hyper = Field(default_factory=Hyper)
    continues: str | None = Field(
        default=None, description="the adapter version whose weights this run trains on from"
    )
    continues_path: str | None = Field(
        default=None, description="that version's folder, workspace-relative"
    )

    @model_validator(mode="after")
    def _method_fits_stage(self) -> "RunSpec":
        if self.stage in BASE_TUNE_STAGES:
            raise ValueError(f"{self.stage} trains no LoRA adapter: {BASE_TUNE_RULE}")
        if self.stage == "planning_dpo" and self.method != "dpo":
            raise ValueError("planning_dpo trains on preference pairs: method must be dpo")
        if (self.continues is None) != (self.continues_path is None):
            raise ValueError("continues and continues_path name one adapter version together")
        if self.continues is not None and (self.stage, self.method) != ("execute_code", "dpo"):
            raise ValueError("only an execute_code DPO run continues an adapter (its SFT one)")
        return self


class BackendChoice(_Model):
    """The backend a worker trains on, and why it is that one."""

    backend: Backend
    why: str


class StepRecord(_Model):
    """One logged training step, as a line of `metrics.jsonl`."""

    step: int = Field(ge=0)
    max_steps: int = Field(ge=1)
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    memory_mb: float | None = Field(default=None, description="GPU memory, else the process RSS")
    elapsed_s: float = Field(ge=0)
    eta_s: float | None = None
    reward_margin: float | None = Field(default=None, description="DPO only")
    reward_accuracy: float | None = Field(default=None, description="DPO only")


class RunResult(_Model):
    """What the worker reports when it exits on its own."""

    status: Literal["done", "stopped"]
    backend: Backend
    steps: int = Field(ge=0)
    max_steps: int = Field(ge=1)
    final_loss: float | None
    train_runtime_s: float = Field(ge=0)
    effective: dict[str, str] = Field(
        default_factory=dict, description="settings the backend replaced, and with what"
    )
    adapter_dir: str | None = Field(description="ADAPTER_DIR when status is done")
