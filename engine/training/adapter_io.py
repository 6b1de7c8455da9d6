"""Load a base model with a trained adapter and generate from it: for tests and the eval gate.

Generation is greedy, so the same model, adapter and messages always give the same text; it
stops at the tokenizer's eos, which a run's adapter folder carries (`<|im_end|>`).
"""

from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import BatchEncoding, PreTrainedTokenizerBase


def load_base(base_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model, in eval mode, and its tokenizer, from a local folder."""
    tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base_path, local_files_only=True)
    return model.eval(), tokenizer


def load_with_adapter(
    base_path: Path, adapter_path: Path
) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """The base model with the adapter applied, in eval mode, and the adapter's tokenizer."""
    base, _ = load_base(base_path)
    model = PeftModel.from_pretrained(base, adapter_path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(adapter_path, local_files_only=True)
    return model.eval(), tokenizer


def generate(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    max_new_tokens: int,
) -> str:
    """The model's greedy answer to `messages`, special tokens left out."""
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    assert isinstance(inputs, BatchEncoding), "return_dict=True gives a BatchEncoding"
    with torch.no_grad():
        # PeftModel reaches its base model's generate through torch's __getattr__, typed Tensor.
        output = model.generate(  # type: ignore[operator]
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    answer = output[0, inputs["input_ids"].shape[1] :]
    text = tokenizer.decode(answer, skip_special_tokens=True)
    assert isinstance(text, str), "one sequence decodes to one string"
    return text
