"""Prompt templates: qa (plain, few-shot, system line) and chat with a tiny char-level tokenizer
that carries its own chat template (built here, offline)."""

from __future__ import annotations

from typing import Any

import pytest

from sea_dist.config import DataConfig
from sea_dist.data import PromptTemplate, make_template
from sea_dist.data.templates import FEW_SHOT_INSTRUCTION, FEW_SHOT_PAIRS
from sea_dist.errors import DataError

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
NO_SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def _tokenizer(chat_template: str | None) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = ["<unk>", "<s>", "</s>"] + [chr(i) for i in range(32, 127)] + ["\n"]
    backend = Tokenizer(models.WordLevel({s: i for i, s in enumerate(symbols)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = chat_template
    return tokenizer


@pytest.fixture(scope="module")
def chat_tokenizer() -> Any:
    return _tokenizer(CHAT_TEMPLATE)


def test_qa_render_and_completion() -> None:
    template = make_template(DataConfig())
    assert template.render("Why is the sky blue?") == "Q: Why is the sky blue?\nA:"
    assert template.completion("Rayleigh scattering") == " Rayleigh scattering"
    full = template.render("2 + 2?") + template.completion("4")
    assert full == "Q: 2 + 2?\nA: 4"


def test_qa_few_shot_and_system_line() -> None:
    template = make_template(DataConfig(few_shot=True, system_prompt="Be truthful."))
    text = template.render("Why is the sky blue?")
    assert text.startswith("Be truthful.\n" + FEW_SHOT_INSTRUCTION + "\n\n")
    assert text.endswith("\n\nQ: Why is the sky blue?\nA:")
    for question, answer in FEW_SHOT_PAIRS:
        assert f"Q: {question}\nA: {answer}\n\n" in text
    assert 3 <= len(FEW_SHOT_PAIRS) <= 8
    assert template.completion("x") == " x"
    plain = make_template(DataConfig(few_shot=True)).render("P?")
    assert plain.startswith(FEW_SHOT_INSTRUCTION) and plain.endswith("Q: P?\nA:")


def test_chat_uses_the_tokenizer_template(chat_tokenizer: Any) -> None:
    template = make_template(DataConfig(template="chat"), chat_tokenizer)
    assert template.render("What?") == "<s><|user|>What?\n<|assistant|>"
    assert template.completion("Yes") == "Yes"
    with_system = make_template(
        DataConfig(template="chat", system_prompt="Be brief."), chat_tokenizer
    )
    assert with_system.render("What?") == "<s><|system|>Be brief.\n<|user|>What?\n<|assistant|>"
    few = make_template(DataConfig(template="chat", few_shot=True), chat_tokenizer).render("Q?")
    question, answer = FEW_SHOT_PAIRS[0]
    assert few.startswith(f"<s><|user|>{question}\n<|assistant|>{answer}\n")
    assert few.endswith("<|user|>Q?\n<|assistant|>")
    assert few.count("<|user|>") == len(FEW_SHOT_PAIRS) + 1


def test_chat_errors() -> None:
    with pytest.raises(DataError, match="tokenizer without chat_template"):
        make_template(DataConfig(template="chat"), _tokenizer(None))
    template = make_template(
        DataConfig(template="chat", system_prompt="S"), _tokenizer(NO_SYSTEM_TEMPLATE)
    )
    with pytest.raises(DataError, match="System role not supported") as info:
        template.render("Q?")
    assert "system_prompt" in str(info.value)
    no_system = make_template(DataConfig(template="chat"), _tokenizer(NO_SYSTEM_TEMPLATE))
    assert no_system.render("Q?") == "[user] Q?\n[assistant] "
    with pytest.raises(DataError, match="'qa' or 'chat'"):
        PromptTemplate("other")  # type: ignore[arg-type]


def test_identity_tracks_everything_that_changes_the_text(chat_tokenizer: Any) -> None:
    identities = [
        make_template(DataConfig()).identity(),
        make_template(DataConfig(few_shot=True)).identity(),
        make_template(DataConfig(system_prompt="Be truthful.")).identity(),
        make_template(DataConfig(template="chat"), chat_tokenizer).identity(),
        make_template(DataConfig(template="chat"), _tokenizer(NO_SYSTEM_TEMPLATE)).identity(),
    ]
    assert len(set(identities)) == len(identities)
    assert make_template(DataConfig()).identity() == PromptTemplate().identity()
    # qa ignores a tokenizer: the text does not depend on it.
    assert make_template(DataConfig(), chat_tokenizer).identity() == identities[0]
