"""Token-level batching for recording: exact prompt/completion boundaries, padding, readouts.

A demonstration becomes up to three token sequences (prompt + positive, prompt + negative and,
in ``generate`` mode, prompt + generated tokens). Each sequence carries *readouts*: token spans
whose site activations are averaged into one recorded vector (a span of one token is the
``last`` selector). Sequences are sorted by length and cut into batches so padding is small, and
each batch is padded on the left or right with matching attention masks and position ids, so a
sequence gives the same activations whatever batch it lands in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from sea_dist.errors import DataError

Target = Literal["neutral", "positive", "negative"]
PaddingSide = Literal["left", "right"]


@dataclass(frozen=True)
class Readout:
    """One recorded vector: the mean of the site output over tokens ``[start, stop)``.

    Attributes:
        row: index of the demonstration in the recorded batch.
        target: which array the vector belongs to.
        start: first token (inclusive), in the unpadded sequence.
        stop: last token (exclusive); ``stop - start == 1`` reads a single token.
    """

    row: int
    target: Target
    start: int
    stop: int


@dataclass
class TokenSequence:
    """Token ids run through the model, with the readouts taken from them.

    Attributes:
        ids: token ids, prompt then completion, without padding.
        readouts: what to record from this sequence (one or two spans).
    """

    ids: list[int]
    readouts: list[Readout] = field(default_factory=list)


@dataclass
class PaddedBatch:
    """A padded batch and where each readout lands in it.

    Attributes:
        input_ids: (B, T) int64.
        attention_mask: (B, T) int64, 1 for real tokens.
        position_ids: (B, T) int64, 0-based positions of real tokens (pads clamped to 0 on the
            left), so left padding does not shift rotary or learned positions.
        starts: (B, K) int64 readout span starts in padded coordinates.
        stops: (B, K) int64 readout span stops (exclusive) in padded coordinates.
        readouts: per sequence, its readouts (K slots; shorter lists leave unused slots).
        single_token: every real span covers exactly one token (gather instead of averaging).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    starts: torch.Tensor
    stops: torch.Tensor
    readouts: list[list[Readout]]
    single_token: bool

    @property
    def n_tokens(self) -> int:
        """Real (non-pad) tokens in the batch."""
        return int(self.attention_mask.sum())


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt.

    Special tokens (e.g. a BOS) are added the tokenizer's usual way, unless the text already
    starts with the BOS token, as chat-template output does (adding it twice would change every
    activation).
    """
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (isinstance(bos, str) and bos and text.startswith(bos))
    return list(tokenizer(text, add_special_tokens=add_special)["input_ids"])


def encode_completion(tokenizer: Any, text: str, what: str) -> list[int]:
    """Token ids of a completion, tokenised on its own (no special tokens).

    Tokenising prompt and completion separately and concatenating the ids makes the boundary
    exact, which the ``mean`` selector needs.

    Raises:
        DataError: the completion tokenises to nothing.
    """
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise DataError(
            f"{what}: expected a completion with at least one token, found {text!r}; "
            "fill in the answer or drop the row"
        )
    return ids


def completion_span(prompt_len: int, total_len: int, token: str) -> tuple[int, int]:
    """The span the selector reads in a sequence of ``prompt_len`` prompt tokens.

    ``last`` reads the final token; ``mean`` averages the completion tokens; an empty completion
    (a generation that stopped at once) falls back to the last prompt token.
    """
    if total_len <= prompt_len:
        return prompt_len - 1, prompt_len
    if token == "mean":
        return prompt_len, total_len
    return total_len - 1, total_len


def length_batches(
    sequences: Sequence[TokenSequence], batch_size: int
) -> list[list[TokenSequence]]:
    """Cut sequences into batches of similar length (longest first), ``batch_size`` at most.

    Sorting by length keeps padding small; the longest batch goes first so an out-of-memory
    error shows up at once rather than at the end of a shard.
    """
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i].ids))
    return [
        [sequences[i] for i in order[start : start + batch_size]]
        for start in range(0, len(order), batch_size)
    ]


def pad_ids(
    sequences: Sequence[Sequence[int]], pad_id: int, side: PaddingSide
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Pad id lists to one length.

    Returns:
        ``(input_ids (B, T) int64, attention_mask (B, T) int64, offsets)`` where ``offsets[b]``
        is the padded column of token 0 of sequence ``b`` (0 for right padding).
    """
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    offsets = []
    for b, ids in enumerate(sequences):
        offset = width - len(ids) if side == "left" else 0
        input_ids[b, offset : offset + len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[b, offset : offset + len(ids)] = 1
        offsets.append(offset)
    return input_ids, mask, offsets


def position_ids_for(mask: torch.Tensor) -> torch.Tensor:
    """Position of each real token counted from the sequence's first real token (pads -> 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def pad_batch(batch: Sequence[TokenSequence], pad_id: int, side: PaddingSide) -> PaddedBatch:
    """Pad a batch and translate its readout spans into padded coordinates."""
    input_ids, mask, offsets = pad_ids([s.ids for s in batch], pad_id, side)
    slots = max(len(s.readouts) for s in batch)
    starts = torch.zeros((len(batch), slots), dtype=torch.long)
    stops = torch.ones((len(batch), slots), dtype=torch.long)
    single = True
    for b, (sequence, offset) in enumerate(zip(batch, offsets)):
        # Unused slots read the sequence's first real token; their vectors are dropped.
        starts[b, :] = offset
        stops[b, :] = offset + 1
        for k, readout in enumerate(sequence.readouts):
            starts[b, k] = offset + readout.start
            stops[b, k] = offset + readout.stop
            single = single and readout.stop - readout.start == 1
    return PaddedBatch(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position_ids_for(mask),
        starts=starts,
        stops=stops,
        readouts=[list(s.readouts) for s in batch],
        single_token=single,
    )
