"""Perplexity: padded batches equal per-text forward passes; masking ignores padding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_models import build_tiny_model

from sea_dist.errors import DataError
from sea_dist.evaluate.perplexity import perplexity

TEXTS = ["A short one.", "A somewhat longer sentence, with a comma.", "Hi", "x"]


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_perplexity_matches_unbatched_reference(arch: str) -> None:
    model, tokenizer = build_tiny_model(arch)
    result = perplexity(model, tokenizer, TEXTS, batch_size=3)
    nll, count = [], []
    for text in TEXTS:
        ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(text)["input_ids"]]])
        with torch.no_grad():
            logprobs = model(input_ids=ids).logits[0, :-1].double().log_softmax(-1)
        nll.append(-float(logprobs.gather(-1, ids[0, 1:, None]).sum()))
        count.append(ids.shape[1] - 1)
    np.testing.assert_allclose(result.nll, nll, rtol=1e-5)
    assert list(result.n_tokens) == count
    assert result.perplexity == pytest.approx(math.exp(sum(nll) / sum(count)), rel=1e-5)
    np.testing.assert_allclose(result.per_text, np.exp(np.array(nll) / np.array(count)), rtol=1e-5)


def test_perplexity_truncates_and_refuses_empty_input() -> None:
    model, tokenizer = build_tiny_model("llama")
    result = perplexity(model, tokenizer, ["abcdefghij" * 5], max_length=8)
    assert list(result.n_tokens) == [7]
    with pytest.raises(DataError, match="2\\+ tokens"):
        perplexity(model, tokenizer, [""], max_length=8)
