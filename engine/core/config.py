"""Workspace configuration: a TOML file validated with pydantic."""

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.core.errors import ConfigError, validation_lines
from engine.core.stages import metric_keys

CONFIG_FILE = "cra.toml"
DEFAULT_MOUNT_ROOTS = ["/media/*", "/run/media/*/*", "/mnt/*"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UsbConfig(_Section):
    """Where drives are looked for: glob patterns of mount points, plus plain folders."""

    mount_roots: list[str] = Field(default_factory=lambda: list(DEFAULT_MOUNT_ROOTS))
    extra_dirs: list[Path] = Field(default_factory=list)
    rescan_interval_s: float = Field(default=1.0, gt=0, le=2.0)


class ValidationConfig(_Section):
    """Limits applied to every incoming repo package."""

    manifest_max_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    wheel_max_uncompressed_bytes: int = Field(default=1024 * 1024 * 1024, gt=0)
    wheel_max_compression_ratio: float = Field(default=200.0, gt=1)
    dry_run_timeout_s: float = Field(default=300.0, gt=0)
    dry_run_memory_mb: int = Field(default=4096, gt=0)
    content_max_line_length: int = Field(default=2000, gt=0)
    content_base64_min_length: int = Field(default=512, gt=0)
    content_max_file_bytes: int = Field(default=2 * 1024 * 1024, gt=0)


class OpenAIPipelineConfig(_Section):
    """An OpenAI-compatible chat endpoint (vLLM serving adapters, or a teacher)."""

    base_url: str = Field(default="http://127.0.0.1:8000/v1", pattern=r"^https?://")
    model: str = Field(default="base", min_length=1)
    timeout_s: float = Field(default=600.0, gt=0)
    max_tokens: int = Field(default=4096, gt=0)


class CommandPipelineConfig(_Section):
    """An external planner: argv run with the task as JSON on stdin, its answer on stdout."""

    argv: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=900.0, gt=0)


class RayClusterConfig(_Section):
    """The Ray cluster the `ray` backend runs harness work on (docs/cluster.md).

    `address` is the head's GCS address (`host:port`, as `ray start --head` prints it);
    `cpus_per_task` is what one attempt or validation reserves on a node, so a node runs
    (its CPUs / cpus_per_task) at once."""

    address: str = Field(default="", pattern=r"^$|^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
    cpus_per_task: float = Field(default=1.0, gt=0, le=64)


class HarnessConfig(_Section):
    """Limits of the harness's test runs, the planner's context budget, the pipelines, and where
    the work runs: `local` worker processes, or a Ray cluster (`ray`, the `cluster` extra)."""

    test_timeout_s: float = Field(default=600.0, gt=0)
    test_memory_mb: int = Field(default=4096, gt=0)
    flaky_runs: int = Field(default=2, ge=1, le=20)
    context_token_budget: int = Field(default=32768, ge=256)
    openai: OpenAIPipelineConfig = Field(default_factory=OpenAIPipelineConfig)
    command: CommandPipelineConfig = Field(default_factory=CommandPipelineConfig)
    backend: Literal["local", "ray"] = "local"
    ray: RayClusterConfig = Field(default_factory=RayClusterConfig)

    @model_validator(mode="after")
    def _ray_has_an_address(self) -> "HarnessConfig":
        if self.backend == "ray" and not self.ray.address:
            raise ValueError(
                'backend = "ray" needs [harness.ray] address, the head\'s host:port as '
                "`ray start --head` prints it"
            )
        return self


class TrainingDataConfig(_Section):
    """How harness attempts become preference pairs and how much spot-checking gates a stage.

    A failed attempt's plan whose alignment with the commit is at most `planning_alignment_max`
    is a planning failure (a planning_dpo pair); at least `coding_alignment_min`, the plan was
    sound and the code failed (an execute_code pair); in between, the pair would be mislabelled
    either way and is not made (LoRA Training Strategy §6.9).

    A review round gives a verdict once at least `review_min_sample` of its items are decided
    (the LoRA Training Strategy's 10-20 items, §7.2, §9.3); it blocks the stage when its rejects
    show, at `review_confidence`, a reject rate above `review_max_reject_rate` (a one-sided
    Clopper-Pearson lower bound; `engine/training_data/reject_bound.py`).
    """

    planning_alignment_max: float = Field(default=0.5, ge=0, le=1)
    coding_alignment_min: float = Field(default=0.8, ge=0, le=1)
    review_sample_size: int = Field(default=15, ge=1, le=500)
    review_max_reject_rate: float = Field(default=0.2, ge=0, le=1)
    review_min_sample: int = Field(default=10, ge=1, le=500)
    review_confidence: float = Field(default=0.9, gt=0, lt=1)
    plan_min_samples: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _bands_do_not_overlap(self) -> "TrainingDataConfig":
        if self.planning_alignment_max >= self.coding_alignment_min:
            raise ValueError(
                f"planning_alignment_max ({self.planning_alignment_max}) must be below "
                f"coding_alignment_min ({self.coding_alignment_min})"
            )
        if self.review_sample_size < self.review_min_sample:
            raise ValueError(
                f"review_sample_size ({self.review_sample_size}) must be at least "
                f"review_min_sample ({self.review_min_sample}): a smaller round never gets a "
                "verdict"
            )
        return self


class CurationConfig(_Section):
    """The rules `cra curate-data` applies (LoRA Training Strategy §6.1, §9.1, §10)."""

    near_duplicate_threshold: float = Field(default=0.9, gt=0, le=1)
    max_domain_share: float = Field(default=0.2, gt=0, le=1)
    eval_share: float = Field(default=0.1, ge=0, lt=1)
    eval_repos: list[str] = Field(default_factory=list)
    replay_share: float = Field(default=0.15, ge=0.1, le=0.2)
    seed: int = 0
    max_degenerate_rate: float = Field(default=0.05, ge=0, le=1)
    """A stage whose candidates break their contract (`contracts.py`) more often is refused."""


class TrainingConfig(_Section):
    """Where the frozen bases are, and when training may take the GPU.

    `base_models` maps a base kind to a local model folder (relative paths are against the
    workspace); a run always starts from it, never from a merged model (Phase 4 Guidelines §6).
    Training is refused, unless forced, while something answers where a served base's server
    answers (`[serving]`) or at `inference_url` (another inference server on the same GPU): a
    server holds the GPU. And outside `window` ("HH:MM-HH:MM", local time, may wrap midnight)
    if set.

    `hyper` holds a LoRA stage's own training settings (`[training.hyper.scope]`,
    `learning_rate = 1e-4`), over LoRA Training Strategy §7.3's defaults and under a run's own
    `--set`; they are checked against the settings a run takes when a run starts
    (`engine.training.start_options.build_hyper`).

    `backend` is the training stack a run takes, recorded in its spec: `auto` trains on the CPU
    set without CUDA and requires the GPU set (Unsloth, bitsandbytes) with it, `unsloth`
    requires CUDA and the GPU set, `trl` trains on plain trl either way. A machine that lacks
    what the setting needs is refused, never trained on something else
    (`engine.training.training_set`).
    """

    base_models: dict[Literal["reasoning", "coding"], str] = Field(default_factory=dict)
    inference_url: str | None = Field(default=None, pattern=r"^https?://")
    window: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")
    backend: Literal["auto", "unsloth", "trl"] = "auto"
    hyper: dict[
        Literal["task_analysis", "scope", "precision", "planning_dpo", "execute_code"],
        dict[str, bool | int | float | str | list[str]],
    ] = Field(default_factory=dict)


ServedKind = Literal["reasoning", "coding"]
DEFAULT_VLLM_ENV = "~/.local/share/cra-console/vllm-env"
GPU_MEMORY_TOTAL = 0.9
"""The share of a GPU its servers take together when not told (vLLM's default for one server)."""


class ServingConfig(_Section):
    """The vLLM servers that serve the bases with their adapters (LoRA Training Strategy §3,
    §10.5), one per base.

    `bases` maps a base kind to the local model folder vLLM serves (relative paths are against
    the workspace); `base_url` is where the first one's OpenAI-compatible API answers.
    `vllm_env` is the virtual environment vLLM is installed in, apart from the console's (it
    needs another torch; `cra serve --install-vllm` builds it). Servers on one GPU share it
    explicitly: `gpu_memory_utilization` is each base's share of the GPU's memory (by default
    0.9 split evenly among the bases on it), `max_model_len` the longest sequence each serves
    (the model's own when unset), `cuda_devices` which GPU each runs on (all on the first when
    unset).
    """

    base_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://")
    bases: dict[ServedKind, str] = Field(default_factory=dict)
    max_loras: int = Field(default=4, ge=1)
    max_cpu_loras: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=30.0, gt=0)
    vllm_env: str = Field(default=DEFAULT_VLLM_ENV, min_length=1)
    gpu_memory_utilization: dict[ServedKind, float] = Field(default_factory=dict)
    max_model_len: dict[ServedKind, PositiveInt] = Field(default_factory=dict)
    cuda_devices: dict[ServedKind, str] = Field(default_factory=dict)

    @field_validator("gpu_memory_utilization", mode="after")
    @classmethod
    def _shares(cls, shares: dict[ServedKind, float]) -> dict[ServedKind, float]:
        for kind, share in shares.items():
            if not 0 < share < 1:
                raise ValueError(f"gpu_memory_utilization.{kind} = {share} is not within 0..1")
        return shares

    @field_validator("cuda_devices", mode="after")
    @classmethod
    def _devices(cls, devices: dict[ServedKind, str]) -> dict[ServedKind, str]:
        for kind, device in devices.items():
            if not device.isdigit():
                raise ValueError(f"cuda_devices.{kind} = {device!r} is not a GPU index")
        return devices

    def device(self, kind: ServedKind) -> str:
        """The GPU base `kind`'s server runs on ("0" unless `cuda_devices` says)."""
        return self.cuda_devices.get(kind, "0")

    def memory_share(self, kind: ServedKind) -> float:
        """Base `kind`'s `--gpu-memory-utilization`: its own setting, else an even part of
        what the bases on its GPU without a setting leave of `GPU_MEMORY_TOTAL`."""
        if kind in self.gpu_memory_utilization:
            return self.gpu_memory_utilization[kind]
        _, told, untold = self._on_gpu(self.device(kind))
        return round((GPU_MEMORY_TOTAL - told) / len(untold), 3)

    def _on_gpu(self, device: str) -> tuple[list[ServedKind], float, list[ServedKind]]:
        """The bases on GPU `device`, the share they were given together, and those without."""
        sharing = sorted(kind for kind in self.bases if self.device(kind) == device)
        told = sum(self.gpu_memory_utilization.get(kind, 0.0) for kind in sharing)
        untold = [kind for kind in sharing if kind not in self.gpu_memory_utilization]
        return sharing, told, untold

    @model_validator(mode="after")
    def _gpu_split(self) -> "ServingConfig":
        for device in {self.device(kind) for kind in self.bases}:
            sharing, told, untold = self._on_gpu(device)
            limit = 1.0 if not untold else GPU_MEMORY_TOTAL
            if told >= limit or (untold and (limit - told) / len(untold) < 0.05):
                left = f", leaving under 0.05 each for {', '.join(untold)}" if untold else ""
                raise ValueError(
                    f"gpu_memory_utilization: the bases on GPU {device} ({', '.join(sharing)}) "
                    f"ask for {told:g} of its memory together{left}; each server takes its "
                    f"share of the whole GPU, so the shares on one GPU must add up to less than "
                    f"{limit:g}"
                )
        return self


DEFAULT_EVAL_SIZES = {
    "task_analysis": 200,
    "scope": 200,
    "precision": 200,
    "execute_code": 100,
    "planning_dpo": 50,
}
"""LoRA Training Strategy §9.1: the lower end of each stage's eval-set size."""


class EvaluationConfig(_Section):
    """How `cra eval run` gets the answers it scores.

    `backend` "server" asks the configured vLLM server (`[serving]`); "local" starts the CPU
    stand-in server (transformers) for the run, for the tiny test model and the demo.
    `max_tokens` bounds each answer.
    """

    backend: Literal["server", "local"] = "server"
    max_tokens: int = Field(default=1024, ge=1)
    timeout_s: float = Field(default=600.0, gt=0)
    eval_sizes: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_EVAL_SIZES))
    """Rows in each LoRA stage's frozen eval set (LoRA Training Strategy §9.1's lower sizes by
    default). A smaller set may be built, but every gate decision on it is marked underpowered."""
    max_eval_share: float = Field(default=0.2, gt=0, lt=1)
    """The most of a stage's tasks an eval set may hold (LoRA Training Strategy §9.1
    reserves 10-20 %): its tasks never train, so a small corpus gets a small, underpowered set, not
    an empty train split."""

    @field_validator("eval_sizes", mode="after")
    @classmethod
    def _known_stages(cls, sizes: dict[str, int]) -> dict[str, int]:
        for stage, size in sizes.items():
            if stage not in DEFAULT_EVAL_SIZES:
                raise ValueError(
                    f"{stage!r} is not a LoRA stage; known: {', '.join(DEFAULT_EVAL_SIZES)}"
                )
            if size < 1:
                raise ValueError(f"{stage}: {size} is below 1")
        return DEFAULT_EVAL_SIZES | sizes


DEFAULT_MINIMUMS = {
    "task_analysis.file_recall": 0.80,
    "task_analysis.file_precision": 0.60,
    "scope.accuracy": 0.75,
    "scope.relevant_recall": 0.85,
    "precision.accuracy": 0.70,
    "precision.primary_recall": 0.80,
}
"""LoRA Training Strategy §9.1's pass thresholds; execute_code and planning_dpo need only beat their
baseline, so they have none."""


class GateConfig(_Section):
    """When a candidate passes (LoRA Training Strategy §9.2, `engine.evaluation.gate`): a primary
    metric improves with `confidence` (the paired interval's lower bound above 0), none drops by
    more than its tolerance, each is at least its minimum. A drop past the tolerance whose interval
    is below 0 is a regression; one whose interval reaches 0 leaves the decision underpowered.

    Keys are `stage.metric` (e.g. `scope.relevant_recall`); `tolerance` applies to every
    primary metric without its own entry in `tolerances`. Its default, 0.02, is the chance
    wobble of a primary metric that did not change (`bench/gate.py`: at 0, half of the truly
    better scope candidates were stopped by their unchanged second metric). `minimums` are
    the LoRA Training Strategy's pass thresholds (§9.1) unless set here; 0 switches one off.
    """

    tolerance: float = Field(default=0.02, ge=0, le=1)
    tolerances: dict[str, float] = Field(default_factory=dict)
    minimums: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MINIMUMS))
    confidence: float = Field(default=0.95, ge=0.5, lt=1)

    @model_validator(mode="after")
    def _known_metrics(self) -> "GateConfig":
        known = metric_keys()
        for table in ("tolerances", "minimums"):
            for key, value in getattr(self, table).items():
                if key not in known:
                    raise ValueError(
                        f"[gate] {table}: {key!r} is not a primary metric; "
                        f"known: {', '.join(sorted(known))}"
                    )
                if not 0 <= value <= 1:
                    raise ValueError(f"[gate] {table}.{key}: {value} is not within 0..1")
        return self

    @field_validator("minimums", mode="after")
    @classmethod
    def _seed_minimums(cls, minimums: dict[str, float]) -> dict[str, float]:
        return DEFAULT_MINIMUMS | minimums


class WatchConfig(_Section):
    """The end-to-end check after a promotion (LoRA Training Strategy §9.2, §10.5 step 3; Phase 4
    Guidelines §6).

    With `enabled`, promoting a version of a stage the harness puts in its planner slot
    (planning_dpo, execute_code) starts a watch: the harness resolved rate on the stage's held-out
    tasks with the model before the promotion and with the promoted version. A drop of more than
    `tolerance` rolls the stage back.
    """

    enabled: bool = True
    tolerance: float = Field(default=0.05, ge=0, le=1)


class AutopilotConfig(_Section):
    """The unattended night (`cra autopilot`, LoRA Training Strategy §12.5).

    When `enabled`, inside `window` ("HH:MM-HH:MM", local time, may wrap midnight), a stage of
    `stages` whose spot-check gate passes and which has at least `min_new_examples` new
    reviewed items (`min_new_by_stage` overrides it per stage), and which the autopilot has not
    trained in the last `cooldown_hours`, is curated, trained with the servers stopped,
    evaluated and gated; it is promoted only on a gate pass and only when `may_promote`.
    Training is stopped at a checkpoint `stop_margin_minutes` before the window closes and
    resumed the next night. `poll_s`: how often it looks.
    """

    enabled: bool = False
    window: str = Field(default="02:00-06:00", pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")
    stages: list[Literal["task_analysis", "scope", "precision", "planning_dpo", "execute_code"]] = (
        Field(default_factory=list)
    )
    min_new_examples: int = Field(default=200, ge=1)
    min_new_by_stage: dict[
        Literal["task_analysis", "scope", "precision", "planning_dpo", "execute_code"], PositiveInt
    ] = Field(default_factory=dict)
    cooldown_hours: float = Field(default=20.0, ge=0)
    may_promote: bool = False
    stop_margin_minutes: int = Field(default=15, ge=0)
    poll_s: float = Field(default=30.0, gt=0)
    server_stop_timeout_s: float = Field(default=300.0, gt=0)
    """How long the autopilot waits for the servers to stop once it holds serving."""


class Config(_Section):
    """The whole workspace configuration."""

    operator: str = Field(default="operator", min_length=1)
    usb: UsbConfig = Field(default_factory=UsbConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    harness: HarnessConfig = Field(default_factory=HarnessConfig)
    training_data: TrainingDataConfig = Field(default_factory=TrainingDataConfig)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    watch: WatchConfig = Field(default_factory=WatchConfig)
    autopilot: AutopilotConfig = Field(default_factory=AutopilotConfig)


def load_config(path: Path) -> Config:
    """Read and validate `path`; a missing file means all defaults."""
    if not path.exists():
        return Config()
    if not path.is_file():
        raise ConfigError(f"{path}: the config must be a file (TOML), found something else")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 text: {exc}") from exc
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_lines(str(path), exc)) from exc
