"""Does the model still work? Perplexity, built-in factual accuracy and answers that answer.

Three capability measurements, each taken under whatever edit hooks are installed on the model
at the time of the call (so the same function measures the unedited and the edited model):

- perplexity on the shipped held-out text (neutral English paragraphs);
- built-in factual accuracy: the true answer of each built-in question scores higher than its
  plausible false answer (two-choice, chance 0.5);
- answer rate: the share of greedy answers to the built-in questions that contain the true answer
  (case-insensitive). Log-likelihood checks miss an edit that keeps the right answer likely but
  makes the model ramble; this one does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sea_dist.data import load_builtin_demonstrations, load_heldout_text, make_template
from sea_dist.errors import DataError, expected_found
from sea_dist.evaluate.loglik import EncodedPairs, model_device
from sea_dist.evaluate.perplexity import perplexity


@dataclass(frozen=True)
class Capability:
    """Capability measurements of one model state.

    Attributes:
        perplexity: held-out perplexity.
        builtin_accuracy: two-choice accuracy on the built-in questions.
        answer_rate: share of greedy answers containing the true answer.
        generations: the greedy answers, in question order.
    """

    perplexity: float
    builtin_accuracy: float
    answer_rate: float
    generations: list[str] = field(default_factory=list, repr=False)


def greedy_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 24,
) -> list[str]:
    """Greedy continuations of ``prompts`` (left-padded batches, KV cache, stop at EOS).

    Returns:
        The decoded new text of each prompt, special tokens removed, first line only (the
        templates end an answer at a newline).
    """
    if batch_size < 1 or max_new_tokens < 1:
        raise DataError(
            expected_found("batch_size / max_new_tokens", ">= 1", (batch_size, max_new_tokens))
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = model_device(model)
    answers: list[str] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # new tokens must follow the prompt directly
    try:
        for first in range(0, len(prompts), batch_size):
            chunk = list(prompts[first : first + batch_size])
            batch = tokenizer(chunk, return_tensors="pt", padding=True)
            with torch.no_grad():
                out = model.generate(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad,
                )
            new = out[:, batch["input_ids"].shape[1] :]
            for row in tokenizer.batch_decode(new, skip_special_tokens=True):
                lines = row.strip().splitlines()
                answers.append(lines[0].strip() if lines else "")
    finally:
        tokenizer.padding_side = side
    return answers


def answer_rate(answers: Sequence[str], truths: Sequence[str]) -> float:
    """Share of ``answers`` that contain their ``truths`` entry (case-insensitive)."""
    if len(answers) != len(truths) or not answers:
        raise DataError(
            expected_found("answers", f"{len(truths)} (one per question)", len(answers))
        )
    hits = [t.strip().lower() in a.lower() for a, t in zip(answers, truths)]
    return float(np.mean(hits))


@dataclass(frozen=True)
class CapabilityInputs:
    """Tokenised, reusable inputs of :func:`measure_capability` (build once, measure often).

    Attributes:
        builtin: encoded (prompt, true answer) and (prompt, false answer) pairs, interleaved.
        heldout: the held-out paragraphs.
        prompts: rendered built-in questions for generation (``generation_limit`` of them).
        truths: their true answers.
    """

    builtin: Any
    heldout: list[str]
    prompts: list[str]
    truths: list[str]

    @classmethod
    def build(
        cls,
        tokenizer: Any,
        template: Any = None,
        generation_limit: int | None = 60,
        demos: Sequence[Any] | None = None,
    ) -> CapabilityInputs:
        """From the packaged built-in demonstrations and held-out text.

        Args:
            tokenizer: the model's tokenizer.
            template: renders prompts/completions (default: the default data template).
            generation_limit: built-in questions used for the answer rate (None: all).
            demos: the built-in questions to use (default: all of them); the gate passes the
                part ``data.holdout`` kept out of the fit.
        """
        from sea_dist.config import DataConfig

        template = template or make_template(DataConfig(), tokenizer)
        demos = list(demos) if demos is not None else load_builtin_demonstrations()
        pairs = [
            (template.render(d.prompt), template.completion(answer))
            for d in demos
            for answer in (d.positive, d.negative)
        ]
        chosen = demos if generation_limit is None else demos[:generation_limit]
        return cls(
            builtin=EncodedPairs.build(tokenizer, pairs),
            heldout=load_heldout_text(),
            prompts=[template.render(d.prompt) for d in chosen],
            truths=[d.positive for d in chosen],
        )


def measure_capability(
    loaded: Any,
    *,
    batch_size: int = 8,
    generation_limit: int | None = 60,
    max_new_tokens: int = 24,
    inputs: CapabilityInputs | None = None,
    scorer: Any = None,
    before_batch: Any = None,
) -> Capability:
    """Perplexity, built-in accuracy and answer rate of ``loaded`` as it is now (hooks included).

    Args:
        loaded: a :class:`sea_dist.models.LoadedModel` (``model`` and ``tokenizer``).
        batch_size: sequences per forward pass.
        generation_limit: built-in questions generated for the answer rate (None: all 202).
        max_new_tokens: greedy tokens per answer.
        inputs: pre-built inputs (default: built here).
        scorer: model-like callable used for the log-likelihood parts (default ``loaded.model``;
            a restart cache can stand in); generation always uses the full model.
        before_batch: told each batch's prompt lengths (an edit on ``generated`` positions
            needs them: the answer tokens of the built-in pairs are edited, and every token of
            the held-out text but its first, the conservative reading of "generated").
    """
    model, tokenizer = loaded.model, loaded.tokenizer
    inputs = inputs or CapabilityInputs.build(tokenizer, generation_limit=generation_limit)
    scorer = scorer if scorer is not None else model
    logprob = inputs.builtin.score(scorer, batch_size, before_batch).logprob
    accuracy = float(np.mean(logprob[0::2] > logprob[1::2]))
    ppl = perplexity(
        scorer, tokenizer, inputs.heldout, batch_size, before_batch=before_batch
    ).perplexity
    answers = greedy_answers(
        model,
        tokenizer,
        inputs.prompts,
        batch_size=max(batch_size, 16),
        max_new_tokens=max_new_tokens,
    )
    return Capability(ppl, accuracy, answer_rate(answers, inputs.truths), answers)
