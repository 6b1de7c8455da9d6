"""A tiny causal LM built on the spot, so the CPU training path runs without any download.

It is a real Qwen2 architecture (hidden 64, 2 layers) with all seven projections LoRA targets
(q/k/v/o/gate/up/down), random weights, and a byte-level BPE tokenizer trained here over a
small corpus of code and ChatML text. The tokenizer speaks ChatML like the Qwen bases: the
template marks the assistant's turns with `{% generation %}` so TRL can train on them only,
eos is `<|im_end|>` and pad is `<|endoftext|>`. The same seed gives the same files.
"""

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|endoftext|>"
SPECIAL_TOKENS = (PAD, IM_START, IM_END)

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message.content + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

CORPUS = (
    "def add(a, b):\n    return a + b\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n",
    "    def push(self, item):\n        self.items.append(item)\n",
    "import os\nfrom pathlib import Path\n\nfor name in sorted(os.listdir('.')):\n",
    "if value is None:\n    raise ValueError(f'missing {name!r}')\n",
    "def test_add():\n    assert add(2, 3) == 5\n",
    "<|im_start|>system\nYou plan code changes.<|im_end|>\n",
    "<|im_start|>user\nFix the failing test in parser.py.<|im_end|>\n",
    "<|im_start|>assistant\n1. Read parser.py\n2. Change parse_line\n3. Run pytest<|im_end|>\n",
    "The scope is the function and its tests; the plan edits one file and adds a test.\n",
)


def build_tiny_model(out: Path, vocab_size: int = 512, seed: int = 0) -> Path:
    """Write a tiny Qwen2 model and its tokenizer to `out` (created) and return `out`."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(vocab_size)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    return chat_tokenizer(
        CORPUS, vocab_size, pre_tokenizers.ByteLevel(add_prefix_space=False), max_length=512
    )


def chat_tokenizer(
    corpus: Iterable[str],
    vocab_size: int,
    pre_tokenizer: pre_tokenizers.PreTokenizer,
    max_length: int,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on `corpus` with the ChatML special tokens and chat template
    the training worker expects; `pre_tokenizer` decides where words split."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizer
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=IM_END,
        pad_token=PAD,
        additional_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_length,
    )
