"""Perplexity of a causal LM on a list of texts (batched, right-padded, padding masked out).

Each text is tokenised on its own (with the tokenizer's special tokens; a BOS token is prepended
when the tokenizer adds none, so the first word is predicted too) and cut to ``max_length``
tokens. Every token after the first is predicted from its prefix; the corpus perplexity is
``exp(total negative log-likelihood / total predicted tokens)``, so long texts weigh more, as in
the usual token-level definition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sea_dist.errors import DataError, expected_found
from sea_dist.evaluate.loglik import BatchContext, score_spans


@dataclass(frozen=True)
class PerplexityResult:
    """Corpus perplexity and per-text negative log-likelihoods.

    Attributes:
        perplexity: ``exp(sum(nll) / sum(n_tokens))``.
        nll: ``(n,)`` float64 summed negative log-likelihood per text (nats).
        n_tokens: ``(n,)`` int64 predicted tokens per text.
    """

    perplexity: float
    nll: np.ndarray
    n_tokens: np.ndarray

    @property
    def per_text(self) -> np.ndarray:
        """``(n,)`` perplexity of each text on its own (NaN for a text with no predicted token)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                self.n_tokens > 0, np.exp(self.nll / np.maximum(self.n_tokens, 1)), np.nan
            )


def _encode(tokenizer: Any, text: str, max_length: int) -> list[int]:
    ids = list(tokenizer(text)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and (not ids or ids[0] != bos):
        ids = [int(bos), *ids]
    return ids[:max_length]


def perplexity(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 8,
    max_length: int = 512,
    before_batch: BatchContext | None = None,
) -> PerplexityResult:
    """Token-level perplexity of ``model`` (with any edit hooks applied) on ``texts``.

    Args:
        model: a causal LM.
        tokenizer: its tokenizer.
        texts: the evaluation texts.
        batch_size: texts per forward pass (sorted by length).
        max_length: tokens kept per text (from the start).
        before_batch: see :func:`sea_dist.evaluate.loglik.score_spans` (each text's prompt is
            its first token).

    Raises:
        DataError: no text has two tokens or more (nothing to predict).
    """
    if max_length < 2:
        raise DataError(expected_found("max_length", "at least 2 tokens", max_length))
    sequences = [_encode(tokenizer, text, max_length) for text in texts]
    pad_id = getattr(tokenizer, "pad_token_id", None)
    scores = score_spans(
        model,
        sequences,
        [1] * len(sequences),
        batch_size,
        0 if pad_id is None else pad_id,
        before_batch,
    )
    total = int(scores.n_tokens.sum())
    if total == 0:
        raise DataError(
            expected_found(
                "perplexity texts",
                "at least one text of 2+ tokens",
                f"{len(texts)} texts",
                "pass longer texts",
            )
        )
    nll = -scores.logprob
    return PerplexityResult(
        perplexity=math.exp(float(nll.sum()) / total), nll=nll, n_tokens=scores.n_tokens
    )
