"""The chat-template rule the worker applies before loading a model, on both backends.

The tokenizers are the tiny model's, built here, with the chat template changed; trl's own
templates come from the installed trl. The rule must accept exactly what trl's SFTTrainer
trains on the assistant's turns only: checked against `get_training_chat_template` over every
template trl ships.
"""

from pathlib import Path

import pytest
from tokenizers import pre_tokenizers
from transformers import PreTrainedTokenizerFast
from trl import chat_template_utils
from trl.chat_template_utils import get_training_chat_template, has_generation_markers

from engine.training.chat_template import (
    ChatTemplateRefused,
    check_chat_template,
    template_rule,
    trl_families,
)
from engine.training.contract import Method
from engine.training.tiny_model import CHAT_TEMPLATE, CORPUS, build_tiny_model, chat_tokenizer

BASE = Path("/models/base")
PLAIN_CHATML = CHAT_TEMPLATE.replace("{%- generation %}", "").replace("{%- endgeneration %}", "")
"""The tiny model's ChatML without its generation markers: a template trl does not ship."""


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return chat_tokenizer(
        CORPUS, 512, pre_tokenizers.ByteLevel(add_prefix_space=False), max_length=512
    )


def shipped_templates() -> dict[str, str]:
    """Every chat template the installed trl ships, training ones included, by its name."""
    return {
        name: value
        for name, value in vars(chat_template_utils).items()
        if isinstance(value, str) and name.endswith("_chat_template")
    }


class TestTemplateRule:
    def test_sft_trains_with_generation_markers(self) -> None:
        assert "{% generation %}" in template_rule(CHAT_TEMPLATE, "sft", BASE)

    def test_sft_trains_with_a_template_trl_has_a_training_template_for(self) -> None:
        """trl swaps its own training template in; the line names the family."""
        qwen = chat_template_utils.qwen2_5_chat_template
        assert template_rule(qwen, "sft", BASE) == (
            "chat template: trl's qwen2_5, trained with trl's qwen2_5 training template"
        )

    def test_sft_refuses_an_unmarked_template_trl_does_not_know(self) -> None:
        """Named with the base folder and the fix, instead of failing inside SFTTrainer after
        the model loaded (trl) or masking another way (Unsloth)."""
        with pytest.raises(ChatTemplateRefused) as caught:
            template_rule(PLAIN_CHATML, "sft", BASE)
        message = str(caught.value)
        assert message.startswith(f"{BASE}: the tokenizer's chat template has no {{% generation")
        assert "is not one trl " in message
        assert "{% generation %} … {% endgeneration %}" in message
        assert "`cra bases register`" in message

    def test_dpo_needs_a_template_but_no_markers(self) -> None:
        assert template_rule(PLAIN_CHATML, "dpo", BASE).startswith("chat template: the tokenizer's")

    @pytest.mark.parametrize("method", ["sft", "dpo"])
    @pytest.mark.parametrize("template", [None, ""])
    def test_no_template_is_refused_for_either_method(
        self, method: Method, template: str | None
    ) -> None:
        with pytest.raises(ChatTemplateRefused, match="the tokenizer has no chat template"):
            template_rule(template, method, BASE)

    def test_named_templates_are_judged_by_their_default(self) -> None:
        """As trl does with a template shipped as named variants."""
        assert "{% generation %}" in template_rule(
            {"default": CHAT_TEMPLATE, "tool_use": PLAIN_CHATML}, "sft", BASE
        )
        with pytest.raises(ChatTemplateRefused, match="no `default`"):
            template_rule({"tool_use": CHAT_TEMPLATE}, "sft", BASE)


class TestAgreesWithTrl:
    def test_the_rule_accepts_exactly_what_sft_trainer_trains(
        self, tokenizer: PreTrainedTokenizerFast
    ) -> None:
        """SFTTrainer (assistant_only_loss) keeps a template with markers and otherwise calls
        get_training_chat_template, which raises for a template it has no training one for;
        the rule, read from trl's shipped templates, agrees on every one of them."""
        templates = {**shipped_templates(), "plain_chatml": PLAIN_CHATML}
        refused_by_trl = set()
        for name, template in templates.items():
            tokenizer.chat_template = template
            if not has_generation_markers(template):
                try:
                    get_training_chat_template(tokenizer)
                except ValueError:
                    refused_by_trl.add(name)
        refused_here = set()
        for name, template in templates.items():
            try:
                template_rule(template, "sft", BASE)
            except ChatTemplateRefused:
                refused_here.add(name)
        assert refused_here == refused_by_trl
        assert "plain_chatml" in refused_here and len(templates) - len(refused_here) > 30

    def test_every_family_has_its_training_template(self) -> None:
        for template, family in trl_families().items():
            training = getattr(chat_template_utils, f"{family}_training_chat_template")
            assert has_generation_markers(training) and not has_generation_markers(template)


class TestCheckChatTemplate:
    def test_the_tokenizer_is_loaded_from_the_base_folder(self, tmp_path: Path) -> None:
        base = build_tiny_model(tmp_path / "tiny")
        assert "{% generation %}" in check_chat_template(base, "sft")
        (base / "chat_template.jinja").write_text(PLAIN_CHATML)
        with pytest.raises(ChatTemplateRefused, match="has no {% generation %} markers"):
            check_chat_template(base, "sft")
        (base / "chat_template.jinja").unlink()
        with pytest.raises(ChatTemplateRefused, match="has no chat template"):
            check_chat_template(base, "dpo")

    def test_a_folder_without_a_tokenizer_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ChatTemplateRefused, match="cannot load its tokenizer"):
            check_chat_template(tmp_path, "sft")
