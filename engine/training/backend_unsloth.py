"""The Unsloth backend: the same run spec on Unsloth's FastLanguageModel, on a CUDA GPU.

Unsloth loads the base (4-bit NF4 when the spec asks), puts LoRA on the spec's modules with its
own gradient checkpointing, and patches TRL's trainers, so the training itself is the shared
`backend_trl.fit`. Unsloth must be imported before transformers, trl and peft to patch them,
and it raises without a GPU: the worker imports it (after setting the environment it reads at
import) only when it has picked this backend, which needs CUDA and the GPU set. It trains in
half precision: bf16, else fp16 on a GPU that lacks bf16; the dtype is always passed, since
Unsloth given none loads bf16 on a bf16 GPU and its trainer then refuses fp16. No test machine
here has a GPU: this path is not exercised by the test suite.
"""

from engine.training.job import Job, Trained


def train(job: Job) -> Trained:
    """Load the base with Unsloth, put LoRA on the spec's modules and train it."""
    import unsloth  # noqa: F401  (first: it patches transformers and trl as it loads)
    from unsloth import FastLanguageModel, PatchDPOTrainer, is_bfloat16_supported

    from engine.training.backend_trl import (
        check_targets,
        effective_settings,
        fit,
        pick_precision,
        quiet_progress_bars,
        set_eos,
        training_args,
    )

    quiet_progress_bars()
    hyper = job.spec.hyper
    settings, effective = effective_settings(
        hyper, cuda=True, bf16_supported=is_bfloat16_supported()
    )
    precision = pick_precision(settings, half=True)
    if precision.fp16:
        effective["fp16"] = "on (Unsloth trains in half precision when bf16 is off)"
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(job.base_path),
        max_seq_length=hyper.max_length,
        load_in_4bit=settings.quantize_4bit,
        dtype=precision.dtype,
        local_files_only=True,
    )
    set_eos(model, tokenizer, job.spec.eos_token, job.base_path)
    check_targets(model, hyper.target_modules, job.base_path)
    model = FastLanguageModel.get_peft_model(
        model,
        r=hyper.rank,
        lora_alpha=hyper.lora_alpha,
        lora_dropout=hyper.dropout,
        target_modules=list(hyper.target_modules),
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=hyper.seed,
    )
    if job.spec.method == "dpo":
        PatchDPOTrainer()
    args = training_args(job, settings, precision, use_cpu=False)
    return fit(job, model, tokenizer, args, None, effective)
