"""Whether a base's tokenizer can train a run's method: checked by the worker before any model
loads, by one rule on both backends.

SFT trains on the assistant's turns only (`assistant_only_loss`). trl masks them with the chat
template's `{% generation %}` markers; for a template without them, SFTTrainer swaps in a
training template of its own when the template is exactly one trl ships for a model family,
and raises otherwise, in its `__init__`, after the model has loaded. Unsloth (2026.10.9) widens
that match to templates that render like a known family and, failing it, masks with its own
`train_on_responses_only`, so the two backends would train one tokenizer differently, or fail
late. The rule here is trl's, read from the installed trl's shipped templates rather than
through `get_training_chat_template`, which Unsloth replaces once imported: SFT needs markers or
a template trl has a training template for; DPO needs a chat template.
"""

from pathlib import Path

from engine.core.errors import CraError
from engine.training.contract import Method
from engine.training.training_set import installed_version

TRAINING_SUFFIX = "_training_chat_template"
FIX = (
    "give the tokenizer a chat template that wraps each assistant message in "
    "{% generation %} … {% endgeneration %} (chat_template.jinja; "
    "engine/training/tiny_model.py's CHAT_TEMPLATE is one) in a copy of the base, point "
    "[training] base_models at it and `cra bases register` it"
)


class ChatTemplateRefused(CraError):
    """The base's tokenizer has no chat template a run of its method can train with."""


def trl_families() -> dict[str, str]:
    """The chat templates trl swaps for a training template of its own, each mapped to its
    family: every `<family>_chat_template` of `trl.chat_template_utils` that has a
    `<family>_training_chat_template` beside it."""
    from trl import chat_template_utils

    texts = {
        name: value for name, value in vars(chat_template_utils).items() if isinstance(value, str)
    }
    families = [
        name.removesuffix(TRAINING_SUFFIX) for name in texts if name.endswith(TRAINING_SUFFIX)
    ]
    return {
        texts[f"{family}_chat_template"]: family
        for family in families
        if f"{family}_chat_template" in texts
    }


def template_rule(template: str | dict[str, str] | None, method: Method, base_path: Path) -> str:
    """How a run of `method` trains with the tokenizer chat template `template` (a dict holds
    named variants, of which trl takes `default`), said in a line; refused when it cannot."""
    from trl.chat_template_utils import has_generation_markers

    if isinstance(template, dict):
        if "default" not in template:
            raise ChatTemplateRefused(
                f"{base_path}: the tokenizer's chat templates ({', '.join(template)}) have no "
                "`default`, the one trl trains with"
            )
        template = template["default"]
    if not template:
        wanted = FIX if method == "sft" else "give the tokenizer a chat template"
        raise ChatTemplateRefused(
            f"{base_path}: the tokenizer has no chat template, and {method} trains on "
            f"conversations; {wanted}"
        )
    if method == "dpo":
        return "chat template: the tokenizer's (DPO needs no generation markers)"
    if has_generation_markers(template):
        return "chat template: the tokenizer's, whose {% generation %} marks the assistant's turns"
    family = trl_families().get(template)
    if family is None:
        raise ChatTemplateRefused(
            f"{base_path}: the tokenizer's chat template has no {{% generation %}} markers and "
            f"is not one trl {installed_version('trl')} has a training template for, so SFT "
            f"cannot train on the assistant's turns only; {FIX}"
        )
    return f"chat template: trl's {family}, trained with trl's {family} training template"


def check_chat_template(base_path: Path, method: Method) -> str:
    """Load the base's tokenizer (nothing more) and apply `template_rule` to its chat template."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ChatTemplateRefused(f"{base_path}: cannot load its tokenizer: {exc}") from exc
    return template_rule(tokenizer.chat_template, method, base_path)
