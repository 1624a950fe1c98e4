"""EncodedPairs: tokenise once, deduplicate, score many times; against one-at-a-time scoring."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scoring_reference import reference_logprob
from tiny_models import build_tiny_model

from sea_dist.evaluate.loglik import EncodedPairs, score_completions

PAIRS = [
    ("Q: Is the sky blue?\nA:", " Yes"),
    ("Q: Is the sky blue?\nA:", " No, it is green"),
    ("Q: What is 2+2?\nA:", " 4"),
    ("Q: Is the sky blue?\nA:", " Yes"),  # duplicate of pair 0
    ("Q: What is 2+2?\nA:", " Four, of course"),
    ("Q: What is 2+2?\nA:", " 4"),  # duplicate of pair 2
    ("Q: Who?\nA:", ""),  # empty completion: no tokens, log-probability 0
]


@pytest.fixture(scope="module")
def llama() -> tuple[Any, Any]:
    return build_tiny_model("llama")


def test_duplicates_are_encoded_once(llama: tuple[Any, Any]) -> None:
    _, tokenizer = llama
    encoded = EncodedPairs.build(tokenizer, PAIRS)
    assert len(encoded.sequences) == len(encoded.starts) == 5 < len(PAIRS)
    np.testing.assert_array_equal(encoded.index, [0, 1, 2, 0, 3, 2, 4])
    assert encoded.index.dtype == np.int64
    assert encoded.pad_id == tokenizer.pad_token_id == 0


def test_n_tokens_counts_completion_tokens(llama: tuple[Any, Any]) -> None:
    _, tokenizer = llama
    encoded = EncodedPairs.build(tokenizer, PAIRS)
    # the tiny tokenizer is byte-level and adds no special tokens: one token per byte
    expected = [len(completion.encode()) for _, completion in PAIRS]
    np.testing.assert_array_equal(encoded.n_tokens, expected)
    assert encoded.n_tokens.dtype == np.int64


def test_score_equals_score_completions_and_the_reference(llama: tuple[Any, Any]) -> None:
    model, tokenizer = llama
    encoded = EncodedPairs.build(tokenizer, PAIRS)
    scores = encoded.score(model, batch_size=2)
    direct = score_completions(model, tokenizer, PAIRS, batch_size=3)
    np.testing.assert_allclose(scores.logprob, direct.logprob, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(scores.n_tokens, direct.n_tokens)
    np.testing.assert_array_equal(scores.n_tokens, encoded.n_tokens)
    reference = [reference_logprob(model, tokenizer, p, c) if c else 0.0 for p, c in PAIRS]
    np.testing.assert_allclose(scores.logprob, reference, rtol=0, atol=1e-4)
    # duplicates get the very same value, in input order
    assert scores.logprob[3] == scores.logprob[0]
    assert scores.logprob[5] == scores.logprob[2]
    assert scores.logprob[6] == 0.0
    assert scores.logprob.dtype == np.float64
    assert (scores.logprob[:6] < 0).all()


def test_scoring_twice_gives_the_same_values(llama: tuple[Any, Any]) -> None:
    model, tokenizer = llama
    encoded = EncodedPairs.build(tokenizer, PAIRS)
    first = encoded.score(model, batch_size=8).logprob
    again = encoded.score(model, batch_size=8).logprob
    np.testing.assert_array_equal(first, again)


def test_max_length_cuts_the_prompt_and_keeps_the_completion(
    llama: tuple[Any, Any],
) -> None:
    model, tokenizer = llama
    pairs = [("Q: A rather long question about nothing?\nA:", " Short")]
    full = EncodedPairs.build(tokenizer, pairs)
    cut = EncodedPairs.build(tokenizer, pairs, max_length=12)
    assert len(cut.sequences[0]) == 12
    np.testing.assert_array_equal(cut.n_tokens, full.n_tokens)
    assert cut.sequences[0][cut.starts[0] :] == full.sequences[0][full.starts[0] :]
    prompt_kept = pairs[0][0][-(12 - len(" Short")) :]
    expected = reference_logprob(model, tokenizer, prompt_kept, " Short")
    assert cut.score(model).logprob[0] == pytest.approx(expected, abs=1e-4)


def test_no_pairs(llama: tuple[Any, Any]) -> None:
    model, tokenizer = llama
    encoded = EncodedPairs.build(tokenizer, [])
    assert encoded.sequences == []
    assert encoded.n_tokens.shape == (0,)
    assert encoded.score(model).logprob.shape == (0,)
