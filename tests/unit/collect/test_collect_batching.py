"""Padding, position ids, readout spans and length batching."""

from __future__ import annotations

from typing import Literal

import pytest
import torch
from tiny_models import tiny_tokenizer

from sea_dist.collect.batching import (
    Readout,
    TokenSequence,
    completion_span,
    encode_completion,
    encode_prompt,
    length_batches,
    pad_batch,
    pad_ids,
)
from sea_dist.errors import DataError


def test_pad_ids_left_and_right() -> None:
    ids, mask, offsets = pad_ids([[5, 6, 7], [8]], pad_id=0, side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert offsets == [0, 2]
    ids, mask, offsets = pad_ids([[5, 6, 7], [8]], pad_id=0, side="right")
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert offsets == [0, 0]


@pytest.mark.parametrize("side", ["left", "right"])
def test_pad_batch_positions_and_spans(side: Literal["left", "right"]) -> None:
    batch = [
        TokenSequence([1, 2, 3, 4], [Readout(0, "positive", 3, 4), Readout(0, "neutral", 1, 2)]),
        TokenSequence([1, 2], [Readout(1, "negative", 1, 2)]),
    ]
    padded = pad_batch(batch, pad_id=0, side=side)
    assert padded.single_token
    assert padded.n_tokens == 6
    offset = 2 if side == "left" else 0
    # real tokens count positions from 0 whatever the padding
    real = padded.position_ids[1][padded.attention_mask[1].bool()]
    assert real.tolist() == [0, 1]
    assert padded.starts[0].tolist() == [3, 1]
    assert padded.stops[1, 0].item() == offset + 2
    assert padded.input_ids[1, padded.stops[1, 0] - 1].item() == 2
    # the unused second slot of row 1 points at a real token
    assert padded.attention_mask[1, padded.starts[1, 1]].item() == 1


def test_mean_span_is_not_single_token() -> None:
    padded = pad_batch([TokenSequence([1, 2, 3], [Readout(0, "positive", 1, 3)])], 0, "right")
    assert not padded.single_token


def test_completion_span() -> None:
    assert completion_span(4, 7, "last") == (6, 7)
    assert completion_span(4, 7, "mean") == (4, 7)
    # nothing generated: the last prompt token
    assert completion_span(4, 4, "mean") == (3, 4)


def test_length_batches_sorts_longest_first() -> None:
    seqs = [TokenSequence([0] * n) for n in (3, 9, 1, 5, 7)]
    batches = length_batches(seqs, batch_size=2)
    assert [[len(s.ids) for s in b] for b in batches] == [[9, 7], [5, 3], [1]]


def test_encode_prompt_does_not_double_bos() -> None:
    tokenizer = tiny_tokenizer()
    # tiny tokenizer adds no special tokens by itself
    plain = encode_prompt(tokenizer, "Q: hi\nA:")
    assert plain == tokenizer("Q: hi\nA:")["input_ids"]
    with_bos = encode_prompt(tokenizer, "<s>Q: hi")
    assert with_bos.count(tokenizer.bos_token_id) == 1


def test_prompt_and_completion_concatenate_exactly() -> None:
    tokenizer = tiny_tokenizer()
    prompt = encode_prompt(tokenizer, "Q: x\nA:")
    answer = encode_completion(tokenizer, " yes", "row positive")
    assert tokenizer.decode(prompt + answer) == "Q: x\nA: yes"


def test_empty_completion_is_refused() -> None:
    with pytest.raises(DataError, match="row 7 positive: expected a completion"):
        encode_completion(tiny_tokenizer(), "", "row 7 positive")


def test_pad_ids_dtype() -> None:
    ids, mask, _ = pad_ids([[1]], 0, "left")
    assert ids.dtype == torch.long and mask.dtype == torch.long
