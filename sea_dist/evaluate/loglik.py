"""Log-likelihood of token spans and of (prompt, completion) pairs, in length-sorted padded batches.

The scoring primitive of every benchmark here: the sum of the log-probabilities the model gives the
completion's tokens after the prompt. Sequences are sorted by length and right-padded, so the
padding never shifts a real token's position and a batched score equals the one-at-a-time score
up to float rounding; only the completion positions' logits go through the log-softmax (memory
``tokens x vocab``, not ``batch x length x vocab``). Identical pairs are scored once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sea_dist.errors import DataError, expected_found


@dataclass(frozen=True)
class SpanScores:
    """Summed log-probabilities of scored spans.

    Attributes:
        logprob: ``(n,)`` float64, sum over the span's tokens of ``log p(token | prefix)``.
        n_tokens: ``(n,)`` int64, tokens in each span.
    """

    logprob: np.ndarray
    n_tokens: np.ndarray

    @property
    def mean_logprob(self) -> np.ndarray:
        """``(n,)`` float64 length-normalised log-probability (0 for an empty span)."""
        return self.logprob / np.maximum(self.n_tokens, 1)


BatchContext = Callable[[torch.Tensor], AbstractContextManager[Any]]
"""``before_batch(prompt_lengths)``: a context entered around one batch's forward pass."""


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's first parameter lives (inputs go there); CPU for a parameterless one."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def score_spans(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    starts: Sequence[int],
    batch_size: int = 8,
    pad_id: int = 0,
    before_batch: BatchContext | None = None,
) -> SpanScores:
    """Sum ``log p(tokens[i] | tokens[:i])`` for ``i`` in ``[start, len)`` of each sequence.

    Args:
        model: a causal LM returning ``.logits`` of shape ``(batch, seq, vocab)``.
        sequences: token ids per sequence.
        starts: first scored position per sequence (>= 1: position 0 has no prefix).
        batch_size: sequences per forward pass.
        pad_id: id used for right padding (masked out, never scored).
        before_batch: called with each batch's ``starts`` (``(batch,)`` int64, the number of
            prompt tokens of each row) and entered around its forward pass; an edit that touches
            only answer tokens learns the prompt boundary this way.

    Returns:
        Per-sequence summed log-probabilities and scored-token counts, in input order.
    """
    if batch_size < 1:
        raise DataError(expected_found("batch_size", "an integer >= 1", batch_size))
    n = len(sequences)
    logprob = np.zeros(n, dtype=np.float64)
    counts = np.array([max(0, len(s) - b) for s, b in zip(sequences, starts)], dtype=np.int64)
    if any(b < 1 for b in starts):
        raise DataError(
            expected_found(
                "score start",
                "positions >= 1 (a prefix token)",
                min(starts),
                "add a BOS token before the completion",
            )
        )
    device = model_device(model)
    order = sorted(range(n), key=lambda i: -len(sequences[i]))
    with torch.no_grad():
        for first in range(0, n, batch_size):
            rows = [i for i in order[first : first + batch_size] if counts[i] > 0]
            if not rows:
                continue
            width = max(len(sequences[i]) for i in rows)
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros(len(rows), width, dtype=torch.long)
            scored = torch.zeros(len(rows), width - 1, dtype=torch.bool)
            for row, i in enumerate(rows):
                seq = sequences[i]
                ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
                mask[row, : len(seq)] = 1
                # logits at position t predict token t + 1
                scored[row, starts[i] - 1 : len(seq) - 1] = True
            context = (
                before_batch(torch.as_tensor([starts[i] for i in rows], dtype=torch.long))
                if before_batch is not None
                else contextlib.nullcontext()
            )
            with context:
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            picked = logits[:, :-1][scored.to(device)].float()  # (tokens, vocab)
            targets = ids[:, 1:][scored].to(device)
            token_lp = picked.log_softmax(-1).gather(-1, targets[:, None])[:, 0]
            row_of = torch.nonzero(scored)[:, 0].to(device)
            sums = torch.zeros(len(rows), dtype=torch.float64, device=device)
            sums.index_add_(0, row_of, token_lp.double())
            logprob[rows] = sums.cpu().numpy()
    return SpanScores(logprob=logprob, n_tokens=counts)


def encode_pair(tokenizer: Any, prompt: str, completion: str) -> tuple[list[int], int]:
    """Token ids of ``prompt + completion`` and the index of the first completion token.

    The full text is tokenised at once (what the model sees when it generates the completion);
    when that merges tokens across the boundary, prompt and completion are tokenised separately
    and concatenated instead, so the completion tokens are exactly the completion's.

    Raises:
        DataError: the prompt tokenises to nothing and the tokenizer has no BOS token.
    """
    prompt_ids = list(tokenizer(prompt)["input_ids"])
    full = list(tokenizer(prompt + completion)["input_ids"])
    if full[: len(prompt_ids)] != prompt_ids:
        full = prompt_ids + list(tokenizer(completion, add_special_tokens=False)["input_ids"])
    start = len(prompt_ids)
    if start == 0:
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is None:
            raise DataError(
                expected_found(
                    "prompt",
                    "at least one token",
                    repr(prompt),
                    "use a non-empty prompt or a tokenizer with BOS",
                )
            )
        full, start = [int(bos), *full], 1
    return full, start


@dataclass(frozen=True)
class EncodedPairs:
    """``(prompt, completion)`` pairs tokenised once, to be scored many times (e.g. per edit).

    Identical pairs are encoded and scored once; :meth:`score` answers in the original order.

    Attributes:
        sequences: token ids of each distinct pair.
        starts: first completion position of each distinct pair.
        index: ``(n_pairs,)`` int64, the distinct pair each input pair maps to.
        pad_id: id used for right padding.
    """

    sequences: list[list[int]]
    starts: list[int]
    index: np.ndarray
    pad_id: int

    @classmethod
    def build(
        cls, tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int | None = None
    ) -> EncodedPairs:
        """Tokenise ``pairs`` (see :func:`score_completions` for ``max_length``)."""
        unique = list(dict.fromkeys(pairs))
        sequences, starts = [], []
        for prompt, completion in unique:
            ids, start = encode_pair(tokenizer, prompt, completion)
            if max_length is not None and len(ids) > max_length:
                cut = min(len(ids) - max_length, start - 1)
                ids, start = ids[cut:], start - cut
            sequences.append(ids)
            starts.append(start)
        position = {pair: i for i, pair in enumerate(unique)}
        index = np.array([position[pair] for pair in pairs], dtype=np.int64)
        pad_id = getattr(tokenizer, "pad_token_id", None)
        return cls(sequences, starts, index, 0 if pad_id is None else int(pad_id))

    @property
    def n_tokens(self) -> np.ndarray:
        """``(n_pairs,)`` int64 completion tokens of each input pair."""
        counts = np.array([len(s) - b for s, b in zip(self.sequences, self.starts)], np.int64)
        return counts[self.index]

    def score(
        self,
        model: torch.nn.Module,
        batch_size: int = 8,
        before_batch: BatchContext | None = None,
    ) -> SpanScores:
        """Summed completion log-probabilities under ``model`` (hooks in effect), input order.

        ``before_batch``: see :func:`score_spans`.
        """
        scores = score_spans(
            model, self.sequences, self.starts, batch_size, self.pad_id, before_batch
        )
        return SpanScores(logprob=scores.logprob[self.index], n_tokens=scores.n_tokens[self.index])


def score_completions(
    model: torch.nn.Module,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 8,
    max_length: int | None = None,
) -> SpanScores:
    """Summed log-probability of each completion given its prompt.

    Args:
        model: a causal LM (hooks applied to it are in effect).
        tokenizer: its tokenizer (``pad_token_id`` used for padding, 0 when unset).
        pairs: ``(prompt text, completion text)``; the completion is appended to the prompt as is
            (a template's ``completion()`` adds any leading space).
        batch_size: sequences per forward pass.
        max_length: longest sequence fed to the model; longer ones lose prompt tokens from the
            left (the completion is always kept whole).

    Returns:
        Per-pair summed log-probabilities and completion token counts, in input order.
    """
    return EncodedPairs.build(tokenizer, pairs, max_length).score(model, batch_size)
