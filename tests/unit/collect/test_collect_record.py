"""Recording: batched activations equal a simple one-at-a-time reference (fp32, rel err <= 1e-5).

The reference below runs each sequence alone (no padding), keeps every site output with a plain
forward hook and picks the token positions by hand; generation is one prompt at a time without
padding. The recorder under test batches by length, pads left or right, gathers inside hooks and
stops the forward pass early.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pytest
import torch
from tiny_models import build_tiny_model

from sea_dist.collect.record import ActivationRecorder, RecordOptions, record_demonstrations
from sea_dist.data import Demonstration, PromptTemplate
from sea_dist.layers import output_tensor, site_modules

LAYERS = (0, 2)
RTOL = 1e-5

DEMOS = [
    Demonstration(
        id=f"d{i}",
        prompt="What is " + "the thing " * (i % 4) + f"number {i}?",
        positive="It is " + "yes " * (i % 3 + 1),
        negative="no" * (i % 5 + 1),
    )
    for i in range(7)
]


def _run_alone(model: Any, sites: dict[int, torch.nn.Module], ids: list[int]) -> np.ndarray:
    """Site outputs of one unpadded sequence: (n_layers, T, d) float32."""
    kept: dict[int, torch.Tensor] = {}
    handles = [
        module.register_forward_hook(
            lambda _m, _a, out, layer=layer: kept.__setitem__(
                layer, output_tensor(out, batch_shape=(1, len(ids)))[0].detach().clone()
            )
        )
        for layer, module in sites.items()
    ]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
    finally:
        for handle in handles:
            handle.remove()
    return np.stack([kept[layer].float().numpy() for layer in sorted(sites)])


def _reference(
    model: Any,
    tokenizer: Any,
    sites: dict[int, torch.nn.Module],
    token: str,
    neutral: str,
    max_new_tokens: int = 5,
) -> dict[str, Any]:
    template = PromptTemplate("qa")
    eos = tokenizer.eos_token_id
    out: dict[str, list[Any]] = {"neutral": [], "positive": [], "negative": [], "generated": []}

    def pick(states: np.ndarray, start: int, stop: int) -> np.ndarray:
        return states[:, start:stop].mean(axis=1) if token == "mean" else states[:, stop - 1]

    for demo in DEMOS:
        prompt = tokenizer(template.render(demo.prompt))["input_ids"]
        for target in ("positive", "negative"):
            answer = tokenizer(
                template.completion(getattr(demo, target)), add_special_tokens=False
            )["input_ids"]
            states = _run_alone(model, sites, prompt + answer)
            out[target].append(pick(states, len(prompt), len(prompt) + len(answer)))
        if neutral == "prompt":
            out["neutral"].append(_run_alone(model, sites, prompt)[:, -1])
            out["generated"].append("")
            continue
        with torch.no_grad():
            full = model.generate(
                torch.tensor([prompt]),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=eos,
            )[0].tolist()
        new = full[len(prompt) :]
        new = new[: new.index(eos)] if eos in new else new
        states = _run_alone(model, sites, prompt + new)
        if new:
            out["neutral"].append(pick(states, len(prompt), len(prompt) + len(new)))
        else:
            out["neutral"].append(states[:, len(prompt) - 1])
        out["generated"].append(tokenizer.decode(new, skip_special_tokens=True))
    return {k: (v if k == "generated" else np.stack(v)) for k, v in out.items()}


@pytest.fixture(scope="module")
def llama() -> tuple[Any, Any, dict[int, torch.nn.Module]]:
    model, tokenizer = build_tiny_model("llama")
    return model, tokenizer, site_modules(model, LAYERS, "residual")


_REFERENCES: dict[tuple[str, str], dict[str, Any]] = {}


def _assert_close(found: np.ndarray, expected: np.ndarray) -> None:
    assert found.dtype == np.float32
    assert found.shape == expected.shape
    assert np.isfinite(found).all()
    error = np.abs(found - expected).max() / np.abs(expected).max()
    assert error <= RTOL, error


@pytest.mark.parametrize("token", ["last", "mean"])
@pytest.mark.parametrize("neutral", ["prompt", "generate"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_batched_equals_one_at_a_time(
    llama: tuple[Any, Any, dict[int, torch.nn.Module]],
    token: Literal["last", "mean"],
    neutral: Literal["prompt", "generate"],
    padding_side: Literal["left", "right"],
) -> None:
    model, tokenizer, sites = llama
    if (token, neutral) not in _REFERENCES:
        _REFERENCES[token, neutral] = _reference(model, tokenizer, sites, token, neutral)
    expected = _REFERENCES[token, neutral]
    options = RecordOptions(
        token=token, neutral=neutral, max_new_tokens=5, batch_size=4, padding_side=padding_side
    )
    recorded = record_demonstrations(model, tokenizer, sites, PromptTemplate("qa"), DEMOS, options)
    for target in ("neutral", "positive", "negative"):
        _assert_close(getattr(recorded, target), expected[target])
    assert recorded.generated == expected["generated"]
    if neutral == "generate":
        assert any(recorded.generated), "the tiny model generated nothing; the test is vacuous"


@pytest.mark.parametrize("arch", ["gpt2", "opt", "gemma2", "qwen3"])
@pytest.mark.parametrize("site", ["residual", "mlp", "attn"])
def test_other_architectures_and_sites(arch: str, site: str) -> None:
    model, tokenizer = build_tiny_model(arch)
    sites = site_modules(model, LAYERS, site)
    expected = _reference(model, tokenizer, sites, "last", "prompt")
    options = RecordOptions(token="last", neutral="prompt", batch_size=3, padding_side="left")
    recorded = record_demonstrations(model, tokenizer, sites, PromptTemplate("qa"), DEMOS, options)
    for target in ("neutral", "positive", "negative"):
        _assert_close(getattr(recorded, target), expected[target])


def test_stop_early_changes_nothing_and_hooks_are_removed() -> None:
    model, tokenizer = build_tiny_model("llama")
    sites = site_modules(model, (0, 1), "mlp")
    results = []
    for stop_early in (True, False):
        options = RecordOptions(neutral="prompt", stop_early=stop_early)
        results.append(
            record_demonstrations(model, tokenizer, sites, PromptTemplate("qa"), DEMOS, options)
        )
    np.testing.assert_array_equal(results[0].positive, results[1].positive)
    np.testing.assert_array_equal(results[0].neutral, results[1].neutral)
    assert all(not module._forward_hooks for module in model.modules())


def test_token_counts_and_layer_order() -> None:
    model, tokenizer = build_tiny_model("llama")
    sites = site_modules(model, (2, 0), "residual")
    recorder = ActivationRecorder(
        model, tokenizer, sites, PromptTemplate("qa"), RecordOptions(neutral="prompt")
    )
    assert recorder.layers == (0, 2)
    recorded = recorder.record(DEMOS[:2])
    template = PromptTemplate("qa")
    for row, demo in enumerate(DEMOS[:2]):
        prompt = len(tokenizer(template.render(demo.prompt))["input_ids"])
        # byte-level tokenizer: one token per byte of each completion
        expected = (
            2 * prompt
            + len(template.completion(demo.positive).encode())
            + len(template.completion(demo.negative).encode())
        )
        assert recorded.n_tokens[row] == expected
    assert recorded.n_tokens.dtype == np.int64
    # layer 2 is the last block: its residual output differs from layer 0's
    assert not np.allclose(recorded.positive[:, 0], recorded.positive[:, 1])


def test_empty_input_gives_empty_arrays() -> None:
    model, tokenizer = build_tiny_model("llama")
    sites = site_modules(model, LAYERS, "residual")
    recorded = record_demonstrations(
        model, tokenizer, sites, PromptTemplate("qa"), [], RecordOptions(neutral="prompt")
    )
    assert recorded.positive.shape == (0, 2, 32)
    assert recorded.generated == []
