"""The transformers + peft + trl backend: LoRA SFT or DPO from one run spec, CPU or GPU.

It trains the CPU set (CI, machines without a GPU), a GPU run with `[training] backend = "trl"`,
and a run continuing an adapter. What the spec asks for and this machine cannot do (4-bit
quantisation and the 8-bit optimiser need CUDA, bf16 needs a GPU that has it) is replaced, and
each replacement is named in `RunResult.effective`; on CUDA the worker has already refused a
run whose 4-bit or 8-bit optimiser would need a bitsandbytes that is not installed
(`engine.training.worker.pick_backend`). SFT trains on the assistant's turns only; the
adapter's eos is the spec's. A run that continues an adapter (execute_code DPO after its SFT)
loads it trainable instead of a fresh LoRA; the frozen copy DPOTrainer makes of it as the
reference is dropped before the adapter is saved. A curriculum stage's rows are read in the
dataset's order (easy to hard), not shuffled. `fit` is shared with the Unsloth backend.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
from datasets import Dataset
from peft import LoraConfig, PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from engine.core.errors import CraError
from engine.training.contract import CHECKPOINTS_DIR, Hyper
from engine.training.job import Job, Trained
from engine.training.step_log import StepLog
from engine.training_data.curriculum import CURRICULUM_STAGES

KEEP_CHECKPOINTS = 2
REFERENCE_ADAPTER = "ref"


class BaseModelRefused(CraError):
    """The base model or its tokenizer cannot train the run as specified."""


@dataclass(frozen=True)
class Settings:
    """What this machine trains with, after replacing what it cannot do."""

    quantize_4bit: bool
    optimizer: str
    bf16: bool


@dataclass(frozen=True)
class Precision:
    """The dtype the base loads in and the trainer's mixed-precision flags, decided together:
    trl's configs default `bf16 = not fp16`, and Unsloth's trainer refuses fp16 on a base it
    loaded in bf16 (which it picks on a bf16 GPU when given no dtype)."""

    dtype: torch.dtype
    bf16: bool
    fp16: bool


def pick_precision(settings: Settings, half: bool) -> Precision:
    """bf16 when `settings` keep it; else fp16 for a backend that trains in half precision
    (`half`: Unsloth), float32 for one that does not (trl)."""
    if settings.bf16:
        return Precision(dtype=torch.bfloat16, bf16=True, fp16=False)
    if half:
        return Precision(dtype=torch.float16, bf16=False, fp16=True)
    return Precision(dtype=torch.float32, bf16=False, fp16=False)


def effective_settings(
    hyper: Hyper, cuda: bool, bf16_supported: bool
) -> tuple[Settings, dict[str, str]]:
    """The settings to train with and, for each one replaced, what replaced it and why: without
    CUDA, 4-bit, the 8-bit optimiser and bf16; on a GPU, bf16 where it lacks it."""
    effective: dict[str, str] = {}
    quantize = hyper.quantize_4bit and cuda
    if hyper.quantize_4bit and not quantize:
        effective["quantize_4bit"] = "off (no CUDA)"
    optimizer = hyper.optimizer
    if optimizer == "adamw_8bit" and not cuda:
        optimizer = "adamw_torch"
        effective["optimizer"] = "adamw_torch (no CUDA)"
    bf16 = hyper.bf16 and cuda and bf16_supported
    if hyper.bf16 and not bf16:
        effective["bf16"] = "off (no CUDA)" if not cuda else "off (the GPU lacks bf16)"
    return Settings(quantize_4bit=quantize, optimizer=optimizer, bf16=bf16), effective


def train(job: Job) -> Trained:
    """Load the base, put LoRA on the spec's modules and train it."""
    quiet_progress_bars()
    hyper = job.spec.hyper
    cuda = torch.cuda.is_available()
    settings, effective = effective_settings(
        hyper, cuda=cuda, bf16_supported=cuda and torch.cuda.is_bf16_supported()
    )
    precision = pick_precision(settings, half=False)
    dtype = precision.dtype
    tokenizer = AutoTokenizer.from_pretrained(job.base_path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        job.base_path,
        local_files_only=True,
        dtype=dtype,
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        if settings.quantize_4bit
        else None,
    )
    set_eos(model, tokenizer, job.spec.eos_token, job.base_path)
    check_targets(model, hyper.target_modules, job.base_path)
    args = training_args(job, settings, precision, use_cpu=not cuda)
    if job.continues is not None:
        return fit(job, continued_policy(model, job.continues), tokenizer, args, None, effective)
    lora = LoraConfig(
        r=hyper.rank,
        lora_alpha=hyper.lora_alpha,
        lora_dropout=hyper.dropout,
        target_modules=list(hyper.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return fit(job, model, tokenizer, args, lora, effective)


def continued_policy(model: PreTrainedModel, adapter: Path) -> PeftModel:
    """The adapter at `adapter` on the base `model`, trainable: a DPO run's policy starts from
    its weights. DPOTrainer (trl 1.16) copies it into a frozen `ref` adapter as the reference,
    so the reference is the SFT model, as DPO wants."""
    return PeftModel.from_pretrained(model, adapter, is_trainable=True)


def quiet_progress_bars() -> None:
    """No progress bars in train.log: they redraw with carriage returns; the log is lines."""
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def set_eos(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, eos: str, base_path: Path
) -> None:
    """Make `eos` the tokenizer's and the model's end of sequence (LoRA Training Strategy §7.3)."""
    if eos not in tokenizer.get_vocab():
        raise BaseModelRefused(f"{base_path}: the tokenizer has no token {eos!r} to end on")
    if not tokenizer.chat_template:
        raise BaseModelRefused(f"{base_path}: the tokenizer has no chat template")
    tokenizer.eos_token = eos
    model.config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id


def check_targets(model: PreTrainedModel, targets: tuple[str, ...], base_path: Path) -> None:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [target for target in targets if target not in names]
    if missing:
        raise BaseModelRefused(f"{base_path}: no module named {', '.join(missing)} to adapt")


def training_args(
    job: Job, settings: Settings, precision: Precision, use_cpu: bool
) -> SFTConfig | DPOConfig:
    """The TRL config of `job`: the spec's hyperparameters with `settings` and `precision`
    applied (both precision flags set, never left to trl's defaults)."""
    hyper = job.spec.hyper
    common: dict[str, Any] = {
        "output_dir": str(job.run_dir / CHECKPOINTS_DIR),
        "per_device_train_batch_size": hyper.batch_size,
        "gradient_accumulation_steps": hyper.gradient_accumulation,
        "learning_rate": hyper.learning_rate,
        "lr_scheduler_type": hyper.scheduler,
        "warmup_steps": hyper.warmup_ratio,
        "num_train_epochs": hyper.epochs,
        "max_steps": hyper.max_steps or -1,
        "optim": settings.optimizer,
        "bf16": precision.bf16,
        "fp16": precision.fp16,
        "use_cpu": use_cpu,
        "seed": hyper.seed,
        "max_length": hyper.max_length,
        "logging_steps": hyper.logging_steps,
        "save_strategy": "steps",
        "save_steps": hyper.save_steps,
        "save_total_limit": KEEP_CHECKPOINTS,
        "include_num_input_tokens_seen": "non_padding",
        "report_to": "none",
        "disable_tqdm": True,
        "train_sampling_strategy": (
            "sequential" if job.spec.stage in CURRICULUM_STAGES else "random"
        ),
    }
    if job.spec.method == "sft":
        return SFTConfig(**common, assistant_only_loss=True, eos_token=job.spec.eos_token)
    return DPOConfig(**common, beta=hyper.dpo_beta)


def fit(
    job: Job,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    args: SFTConfig | DPOConfig,
    lora: LoraConfig | None,
    effective: dict[str, str],
) -> Trained:
    """Train `model` on `job`'s rows with the trainer of its method, resuming when asked."""
    for name, value in effective.items():
        print(f"effective {name}: {value}")
    step_log = StepLog(job.run_dir, job.resume_step)
    trainer_class = SFTTrainer if job.spec.method == "sft" else DPOTrainer
    trainer = trainer_class(
        model=model,
        # The method picked both the trainer and `args` (an SFTConfig for sft, else DPOConfig).
        args=args,  # type: ignore[arg-type]
        train_dataset=Dataset.from_list(job.rows),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[step_log],
    )
    trainer.train(resume_from_checkpoint=str(job.resume_from) if job.resume_from else None)
    if REFERENCE_ADAPTER in getattr(trainer.model, "peft_config", {}):
        # A model with a peft_config is the PeftModel; trl types it as an optional torch Module.
        trainer.model.delete_adapter(REFERENCE_ADAPTER)  # type: ignore[union-attr,operator]
    state = trainer.state
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    return Trained(
        model=trainer.model,
        tokenizer=tokenizer,
        stopped=step_log.stop_requested and state.global_step < state.max_steps,
        steps=state.global_step,
        max_steps=state.max_steps,
        final_loss=losses[-1] if losses else None,
        runtime_s=step_log.elapsed(),
        effective=effective,
    )
