"""BBQ multiple-choice accuracy: the answer with the highest log-probability is the prediction.

Each of an item's three answers is scored by the summed log-probability of its tokens after the
prompt ``template.render(context + " " + question)``; the prediction is the argmax. The
length-normalised variant (mean log-probability per token) is reported alongside, because the
"unknown" answers ("Cannot be determined") are longer than the names they compete with.
Accuracy is given overall, per bias category and per context condition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from sea_dist.data import PromptTemplate
from sea_dist.errors import DataError, expected_found
from sea_dist.evaluate.loglik import score_completions
from sea_dist.evaluate.truthfulqa import QuestionLike, TemplateLike, answer_pairs


class BBQLike(QuestionLike, Protocol):
    """What scoring needs of an item (``sea_dist.data.BBQItem`` has it)."""

    @property
    def context(self) -> str: ...
    @property
    def answers(self) -> Sequence[str]: ...
    @property
    def label(self) -> int: ...


@dataclass(frozen=True)
class BBQScores:
    """Per-item answer scores and predictions.

    Attributes:
        ids: item ids, in input order.
        categories: bias category per item.
        conditions: context condition per item (``ambig`` / ``disambig``; empty when unknown).
        labels: ``(n,)`` int64 index of the correct answer.
        logprob: ``(n, 3)`` float64 summed log-probability per answer.
        n_tokens: ``(n, 3)`` int64 answer token counts.
    """

    ids: tuple[str, ...]
    categories: tuple[str, ...]
    conditions: tuple[str, ...]
    labels: np.ndarray
    logprob: np.ndarray
    n_tokens: np.ndarray

    @property
    def n(self) -> int:
        """Number of items."""
        return len(self.ids)

    @property
    def predictions(self) -> np.ndarray:
        """``(n,)`` argmax of the summed log-probabilities."""
        return np.argmax(self.logprob, axis=1)

    @property
    def predictions_normalised(self) -> np.ndarray:
        """``(n,)`` argmax of the per-token mean log-probabilities."""
        return np.argmax(self.logprob / np.maximum(self.n_tokens, 1), axis=1)

    @property
    def correct(self) -> np.ndarray:
        """``(n,)`` bool, summed-log-probability prediction is the label."""
        return np.asarray(self.predictions == self.labels)

    @property
    def correct_normalised(self) -> np.ndarray:
        """``(n,)`` bool, normalised prediction is the label."""
        return np.asarray(self.predictions_normalised == self.labels)

    @property
    def accuracy(self) -> float:
        """Accuracy of the summed-log-probability prediction (NaN with no items)."""
        return float(np.mean(self.correct)) if self.n else float("nan")

    @property
    def accuracy_normalised(self) -> float:
        """Accuracy of the length-normalised prediction (NaN with no items)."""
        return float(np.mean(self.correct_normalised)) if self.n else float("nan")

    def _grouped(self, keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
        groups = np.asarray(keys, dtype=object)
        return {
            key: {
                "accuracy": float(np.mean(self.correct[groups == key])),
                "accuracy_normalised": float(np.mean(self.correct_normalised[groups == key])),
                "n": float(np.sum(groups == key)),
            }
            for key in sorted(set(keys))
        }

    def by_category(self) -> dict[str, dict[str, float]]:
        """``{category: {"accuracy", "accuracy_normalised", "n"}}``, sorted by category."""
        return self._grouped(self.categories)

    def by_condition(self) -> dict[str, dict[str, float]]:
        """Same per context condition (items without one are grouped under ``""``)."""
        return self._grouped(self.conditions)


def bbq_prompt(item: BBQLike) -> str:
    """The text the template renders for an item: ``context + " " + question``."""
    return f"{item.context.strip()} {item.question.strip()}"


def score_bbq(
    model: torch.nn.Module,
    tokenizer: Any,
    items: Sequence[BBQLike],
    template: TemplateLike | None = None,
    batch_size: int = 8,
    max_length: int | None = None,
) -> BBQScores:
    """Score BBQ accuracy of ``model`` (with any edit hooks currently applied).

    ``items`` are BBQ items (``sea_dist.data.load_bbq_items``) with three answers each, prompted
    with :func:`bbq_prompt`; the other arguments are those of
    :func:`~sea_dist.evaluate.truthfulqa.score_truthfulqa` (same template default, batching and
    truncation).

    Returns:
        Per-item scores; ``accuracy``, ``by_category()`` and friends aggregate them.
    """
    if template is None:
        template = PromptTemplate("qa")
    pairs = [
        pair for item in items for pair in answer_pairs(template, bbq_prompt(item), item.answers)
    ]
    width = len(items[0].answers) if items else 3
    odd = [item.id for item in items if len(item.answers) != width]
    if odd:
        raise DataError(
            expected_found("BBQ items", f"{width} answers each", odd[:3], "fix or drop those rows")
        )
    scores = score_completions(model, tokenizer, pairs, batch_size, max_length)
    return BBQScores(
        ids=tuple(item.id for item in items),
        categories=tuple(item.category for item in items),
        conditions=tuple(str(getattr(item, "context_condition", "")) for item in items),
        labels=np.array([item.label for item in items], dtype=np.int64),
        logprob=scores.logprob.reshape(len(items), width),
        n_tokens=scores.n_tokens.reshape(len(items), width),
    )
