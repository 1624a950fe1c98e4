"""A one-sequence-at-a-time reference for completion log-probabilities (no batching, no padding)."""

from __future__ import annotations

from typing import Any

import torch


def reference_logprob(
    model: torch.nn.Module, tokenizer: Any, prompt: str, completion: str
) -> float:
    """Sum of log p(completion token | everything before it), one unpadded forward pass."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logprobs = model(input_ids=ids).logits[0].double().log_softmax(-1)
    start = len(prompt_ids)
    return float(sum(logprobs[t - 1, ids[0, t]] for t in range(start, ids.shape[1])))
