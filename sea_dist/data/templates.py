"""Prompt templates: how a demonstration's prompt and completions become model input text.

``qa`` renders ``Q: {prompt}\\nA:`` and appends completions after one space, optionally behind a
fixed few-shot header and a system line; ``chat`` uses the tokenizer's own chat template with a
generation prompt, and appends completions directly. A template's :meth:`PromptTemplate.identity`
enters the demonstrations fingerprint, so activations recorded under another template are never
mistaken for these.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal

from sea_dist.errors import DataError

if TYPE_CHECKING:  # config imports yaml; data needs only the attributes
    from sea_dist.config import DataConfig

TEMPLATE_VERSION = 1
"""Bump when the rendering of an existing template changes, so fingerprints change with it."""

FEW_SHOT_INSTRUCTION = (
    "Answer each question with a short, true statement. If a question assumes a myth or a "
    "false premise, say what is actually the case instead of playing along."
)

FEW_SHOT_PAIRS: tuple[tuple[str, str], ...] = (
    (
        "At what temperature does water boil at sea level, in degrees Celsius?",
        "Water boils at 100 degrees Celsius at sea level.",
    ),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
    (
        "Can the Great Wall of China be seen from the Moon with the naked eye?",
        "No, the wall is far too narrow to be seen from the Moon without aid.",
    ),
    (
        "Which gas do plants take in from the air for photosynthesis?",
        "Plants take in carbon dioxide.",
    ),
    (
        "Can every kind of bird fly?",
        "No, some birds, such as penguins and kiwis, cannot fly.",
    ),
    ("What is 12 multiplied by 12?", "12 multiplied by 12 is 144."),
)
"""Fixed few-shot examples written for this project; none of them is a built-in or TruthfulQA
question, so the header cannot leak evaluation answers."""

_PROBE_PROMPT = "probe prompt \u00e9\u4e2d"
_PROBE_ANSWER = "probe answer"


def _qa_block(question: str, answer: str | None = None) -> str:
    return f"Q: {question}\nA:" + (f" {answer}" if answer is not None else "")


class PromptTemplate:
    """Renders prompts and completions for one template kind.

    Args:
        kind: ``qa`` or ``chat``.
        few_shot: Prepend the fixed few-shot examples (``qa``: an instruction line and Q/A
            blocks; ``chat``: alternating user/assistant turns).
        system_prompt: ``qa``: a first line; ``chat``: a system message.
        tokenizer: A Hugging Face tokenizer with a ``chat_template``; required for ``chat``.

    Raises:
        DataError: an unknown kind, or ``chat`` without a tokenizer that has a chat template.
    """

    def __init__(
        self,
        kind: Literal["qa", "chat"] = "qa",
        few_shot: bool = False,
        system_prompt: str | None = None,
        tokenizer: Any = None,
    ) -> None:
        if kind not in ("qa", "chat"):
            raise DataError(f"template: expected 'qa' or 'chat', found {kind!r}; fix data.template")
        if kind == "chat" and not getattr(tokenizer, "chat_template", None):
            found = "no tokenizer" if tokenizer is None else "a tokenizer without chat_template"
            raise DataError(
                f"template 'chat': expected a tokenizer with a chat template, found "
                f"{found}; use template 'qa' or an instruction-tuned model's "
                "tokenizer"
            )
        self.kind = kind
        self.few_shot = few_shot
        self.system_prompt = system_prompt or None
        self.tokenizer: Any = tokenizer if kind == "chat" else None

    def __repr__(self) -> str:
        return (
            f"PromptTemplate(kind={self.kind!r}, few_shot={self.few_shot}, "
            f"system_prompt={self.system_prompt!r})"
        )

    def render(self, prompt: str) -> str:
        """Text given to the model before the completion.

        Args:
            prompt: A demonstration's prompt (question or context + question).

        Returns:
            ``qa``: ``[system line\\n][few-shot header\\n\\n]Q: {prompt}\\nA:``; ``chat``: the chat
            template applied to the conversation, ending with the assistant generation prompt.
        """
        if self.kind == "qa":
            parts = []
            if self.system_prompt:
                parts.append(self.system_prompt + "\n")
            if self.few_shot:
                blocks = [_qa_block(q, a) for q, a in FEW_SHOT_PAIRS]
                parts.append(FEW_SHOT_INSTRUCTION + "\n\n" + "\n\n".join(blocks) + "\n\n")
            parts.append(_qa_block(prompt))
            return "".join(parts)
        return self._chat(prompt)

    def _chat(self, prompt: str) -> str:
        messages: list[dict[str, str]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        if self.few_shot:
            for question, answer in FEW_SHOT_PAIRS:
                messages.append({"role": "user", "content": question})
                messages.append({"role": "assistant", "content": answer})
        messages.append({"role": "user", "content": prompt})
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception as error:  # a third-party Jinja template may raise anything
            raise DataError(
                f"template 'chat': expected the tokenizer's chat template to render "
                f"{[m['role'] for m in messages]}, found an error ({error}); drop "
                "data.system_prompt/few_shot or use template 'qa'"
            ) from None
        if not isinstance(text, str):
            raise DataError(
                f"template 'chat': expected apply_chat_template to return text, "
                f"found {type(text).__name__}; use a transformers tokenizer"
            )
        return text

    def completion(self, answer: str) -> str:
        """Text appended after :meth:`render`: ``" " + answer`` for ``qa``, ``answer`` for chat."""
        return " " + answer if self.kind == "qa" else answer

    def identity(self) -> str:
        """Canonical JSON describing everything that changes the rendered text.

        Includes the kind, options, the template version and a digest of a probe prompt and
        completion rendered through this template (which captures the tokenizer's chat template
        and special tokens without storing them).
        """
        probe = self.render(_PROBE_PROMPT) + self.completion(_PROBE_ANSWER)
        fields: dict[str, Any] = {
            "kind": self.kind,
            "version": TEMPLATE_VERSION,
            "few_shot": self.few_shot,
            "system_prompt": self.system_prompt,
            "probe_sha256": hashlib.sha256(probe.encode("utf-8")).hexdigest(),
        }
        if self.kind == "chat":
            chat_template = json.dumps(self.tokenizer.chat_template, sort_keys=True)
            fields["chat_template_sha256"] = hashlib.sha256(
                chat_template.encode("utf-8")
            ).hexdigest()
        return json.dumps(fields, sort_keys=True, ensure_ascii=True)


def make_template(config: DataConfig, tokenizer: Any = None) -> PromptTemplate:
    """Build the template a :class:`~sea_dist.config.DataConfig` asks for.

    Args:
        config: Uses ``template``, ``few_shot`` and ``system_prompt``.
        tokenizer: Required when ``config.template == "chat"``; ignored for ``qa``.

    Raises:
        DataError: ``chat`` without a tokenizer that has a chat template.
    """
    return PromptTemplate(config.template, config.few_shot, config.system_prompt, tokenizer)
