"""TruthfulQA question sets of a study: chunks tokenised once, and the dev-fold split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sea_dist.errors import DataError, expected_found
from sea_dist.evaluate.loglik import EncodedPairs
from sea_dist.evaluate.truthfulqa import AnswerLayout, truthfulqa_pairs


@dataclass
class QuestionSet:
    """TruthfulQA questions in chunks, each chunk's pairs tokenised once.

    Attributes:
        items: the questions.
        chunks: ``(pairs, layout)`` per chunk of consecutive questions.
    """

    name: str
    items: list[Any]
    chunks: list[tuple[EncodedPairs, AnswerLayout]]

    @classmethod
    def build(
        cls, name: str, items: list[Any], template: Any, tokenizer: Any, chunk: int
    ) -> QuestionSet:
        chunks = []
        for first in range(0, len(items), chunk):
            pairs, layout = truthfulqa_pairs(items[first : first + chunk], template)
            chunks.append((EncodedPairs.build(tokenizer, pairs), layout))
        return cls(name, items, chunks)

    def layout(self, n_chunks: int) -> AnswerLayout:
        parts = self.chunks[:n_chunks]
        return AnswerLayout(
            np.concatenate([lay.n_true for _, lay in parts]),
            np.concatenate([lay.n_false for _, lay in parts]),
        )

    def n_tokens(self, n_chunks: int) -> np.ndarray:
        return np.concatenate([pairs.n_tokens for pairs, _ in self.chunks[:n_chunks]])

    def n_questions(self, n_chunks: int) -> int:
        return int(sum(len(lay.n_true) for _, lay in self.chunks[:n_chunks]))


def split_dev(items: Sequence[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Seeded split of the dev questions into ``(fit part, validation part)``."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = max(1, int(round(fraction * len(items))))
    if n_val >= len(items):
        raise DataError(
            expected_found("dev fold", "at least 2 questions", len(items), "raise tune.dev_limit")
        )
    shuffled = [items[i] for i in order]
    return shuffled[n_val:], shuffled[:n_val]
