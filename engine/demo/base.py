"""The demo's tiny base: a Granite (Llama-shaped: hidden 64, 2 layers, the seven projections
LoRA targets) that first learns to list files as JSON.

A randomly initialised model cannot write JSON, and a LoRA adapter cannot teach it to: LoRA
leaves the (tied) token embeddings as they are, so a token the base never learned to emit stays
out of reach. So the demo's base is trained briefly, in full, when the demo workspace is built,
on a task that holds no answer of any stage: copy the files the prompt shows into a JSON object,
`{"files": [path]}` under any stage's system prompt, or, when the task names keys, every file
under one of them and an empty list under the others. It learns ChatML, JSON lists, copying
paths from the prompt and the key words; which file a task changes, supports or leaves alone
is never in its data, so the scope adapter has that to learn from the scope train rows (the
stage's eval set stays held out, `engine.evaluation.eval_set`).

Its tokenizer is a byte-level BPE trained on the demo's own text (its commits, files, the stage
templates and the listing answers), one pre-token per line, so a line of a JSON list such as
`    "textkit/slug.py",` is one token: a scope answer is some twenty tokens, which a 2-layer
model copies and the CPU generates in well under a second. The architecture is Granite, not
Qwen2 like the bases the demo stands in for: transformers loads a Qwen2 model's tokenizer as
`Qwen2Tokenizer`, which puts Qwen's word-splitting pattern back in place of this one, while a
Granite model's tokenizer loads as saved. The same seed gives the same files on one machine.
"""

import json
import random
from pathlib import Path
from typing import Any

import torch
from tokenizers import pre_tokenizers
from transformers import (
    BatchEncoding,
    GraniteConfig,
    GraniteForCausalLM,
    PreTrainedTokenizerFast,
)

from engine.demo.repo import DEMO_HISTORY
from engine.training.tiny_model import CORPUS, chat_tokenizer
from engine.training_data.templates import TEMPLATES

VOCAB_SIZE = 1024
MAX_POSITIONS = 2048
LISTINGS = 300
STEPS = 150
BATCH = 8
LEARNING_RATE = 5e-3

LIST_SYSTEM = (
    "You list the files you are shown as a JSON object, under the keys the task names. "
    "Answer with JSON only."
)
KEYS = (
    "files",
    "paths",
    "items",
    "names",
    "changed",
    "kept",
    "relevant",
    "create",
    "supporting",
    "irrelevant",
)
"""Key words the named-key listings use, the scope answer's among them, so the base can emit
them; a listing puts every file under one key, whatever the task, so no key means anything."""

Messages = list[dict[str, str]]


def _paths() -> list[str]:
    """Every path the demo's history writes, outside the tests (as the stage prompts list)."""
    return sorted({path for commit in DEMO_HISTORY for path in commit.files} - _tests())


def _tests() -> set[str]:
    return {path for commit in DEMO_HISTORY for path in commit.files if path.startswith("tests/")}


def _turns(system: str, user: str, answer: dict[str, Any]) -> Messages:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
        {"role": "assistant", "content": json.dumps(answer, indent=2)},
    ]


def listings(count: int = LISTINGS, seed: int = 0) -> list[Messages]:
    """`count` listing conversations: half list a random subset of the demo's files under
    "files" with a stage's system prompt and a commit of the demo as the task; half put them
    under the key the task names, beside empty lists under the others it names."""
    rng = random.Random(seed)
    paths = _paths()
    systems = [template.system for template in TEMPLATES.values()]
    conversations = []
    for number in range(count):
        files = sorted(rng.sample(paths, rng.randint(1, len(paths))))
        listed = "\n".join(files)
        if number % 2 == 0:
            task = rng.choice(DEMO_HISTORY).message
            user = f"Task:\n{task}\n\nRepository files:\n{listed}"
            conversations.append(_turns(rng.choice(systems), user, {"files": files}))
            continue
        keys = rng.sample(KEYS, rng.randint(1, 4))
        full = rng.choice(keys)
        named = ", ".join(f'"{key}"' for key in keys)
        user = (
            f'Task:\nList the files under "{full}", with the keys {named} in that order.\n\n'
            f"Repository files:\n{listed}"
        )
        answer = {key: files if key == full else [] for key in keys}
        conversations.append(_turns(LIST_SYSTEM, user, answer))
    return conversations


def _tokenizer(conversations: list[Messages]) -> PreTrainedTokenizerFast:
    corpus = list(CORPUS)
    corpus += [text for template in TEMPLATES.values() for text in (template.system, template.user)]
    for commit in DEMO_HISTORY:
        corpus.append(commit.message)
        for path, text in commit.files.items():
            corpus += [path, text]
    corpus += [turn["content"] for conversation in conversations for turn in conversation]
    lines = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split("\n", behavior="merged_with_previous"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return chat_tokenizer(corpus, VOCAB_SIZE, lines, max_length=MAX_POSITIONS)


def _encoded(
    tokenizer: PreTrainedTokenizerFast, conversation: Messages
) -> tuple[torch.Tensor, torch.Tensor]:
    """The conversation's token ids and its labels: the assistant's tokens, the rest ignored."""
    encoded = tokenizer.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    assert isinstance(encoded, BatchEncoding), "return_dict=True gives a BatchEncoding"
    ids = torch.tensor(encoded["input_ids"])
    labels = ids.clone()
    labels[~torch.tensor(encoded["assistant_masks"]).bool()] = -100
    return ids, labels


def _batch(
    rows: list[tuple[torch.Tensor, torch.Tensor]], pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (row_ids, row_labels) in enumerate(rows):
        ids[row, : len(row_ids)] = row_ids
        labels[row, : len(row_labels)] = row_labels
        mask[row, : len(row_ids)] = 1
    return ids, mask, labels


def build_demo_base(out: Path, seed: int = 0) -> list[float]:
    """Write the demo's base model and tokenizer to `out` (created), trained on `listings`;
    returns the training loss of each step."""
    out.mkdir(parents=True, exist_ok=True)
    conversations = listings(seed=seed)
    tokenizer = _tokenizer(conversations)
    torch.manual_seed(seed)
    config = GraniteConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GraniteForCausalLM(config)
    rows = [_encoded(tokenizer, conversation) for conversation in conversations]
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / STEPS)
    rng = random.Random(seed)
    losses = []
    model.train()
    for _ in range(STEPS):
        ids, mask, labels = _batch(
            [rows[rng.randrange(len(rows))] for _ in range(BATCH)], tokenizer.pad_token_id
        )
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return losses
