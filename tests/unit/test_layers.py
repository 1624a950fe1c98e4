"""Decoder blocks, edit sites and hook outputs on tiny random models of every architecture."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any

import pytest
import torch
from tiny_models import ARCHITECTURES, D_MODEL, N_LAYERS, build_tiny_model
from transformers.modeling_outputs import BaseModelOutputWithPast

from sea_dist.config import SITES
from sea_dist.errors import ConfigError, ModelError
from sea_dist.layers import (
    decoder_blocks,
    hidden_size,
    num_layers,
    output_tensor,
    replace_output,
    resolve_layers,
    site_module,
    site_modules,
)

TEXTS = ["The capital of France is", "Hi"]


def _batch(tokenizer: Any) -> dict[str, torch.Tensor]:
    return dict(tokenizer(TEXTS, return_tensors="pt", padding=True))


def _capture(model: torch.nn.Module, modules: dict[int, torch.nn.Module], batch: dict) -> dict:
    """Run a forward pass and return {layer: hidden state seen by a forward hook}."""
    seen: dict[int, torch.Tensor] = {}
    batch_shape = tuple(batch["input_ids"].shape)
    handles = [
        module.register_forward_hook(
            lambda _m, _i, out, layer=layer: seen.__setitem__(
                layer, output_tensor(out, batch_shape).detach().clone()
            )
        )
        for layer, module in modules.items()
    ]
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_blocks_and_sizes(arch: str) -> None:
    model, _ = build_tiny_model(arch)
    assert len(decoder_blocks(model)) == N_LAYERS == num_layers(model)
    assert hidden_size(model) == D_MODEL


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_site_yields_batch_seq_d(arch: str, site: str) -> None:
    model, tokenizer = build_tiny_model(arch)
    batch = _batch(tokenizer)
    modules = site_modules(model, range(N_LAYERS), site)
    assert len({id(m) for m in modules.values()}) == N_LAYERS  # one distinct module per layer
    seen = _capture(model, modules, batch)
    assert sorted(seen) == list(range(N_LAYERS))
    for tensor in seen.values():
        assert tensor.shape == (*batch["input_ids"].shape, D_MODEL)
        assert torch.isfinite(tensor).all()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_residual_site_is_hidden_states_of_next_layer(arch: str) -> None:
    # output_hidden_states[l + 1] is the output of block l, except the last one, which some
    # models return after the final norm.
    model, tokenizer = build_tiny_model(arch)
    batch = _batch(tokenizer)
    seen = _capture(model, site_modules(model, range(N_LAYERS), "residual"), batch)
    with torch.no_grad():
        states = model(**batch, output_hidden_states=True).hidden_states
    for layer in range(N_LAYERS - 1):
        torch.testing.assert_close(seen[layer], states[layer + 1])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_replace_output_round_trip_and_zeroing(arch: str) -> None:
    model, tokenizer = build_tiny_model(arch)
    batch = _batch(tokenizer)
    with torch.no_grad():
        reference = model(**batch).logits

    def run(edit: Any, site: str) -> torch.Tensor:
        module = site_module(model, 1, site)
        handle = module.register_forward_hook(
            lambda _m, _i, out: replace_output(out, edit(output_tensor(out)))
        )
        try:
            with torch.no_grad():
                return model(**batch).logits
        finally:
            handle.remove()

    for site in SITES:
        torch.testing.assert_close(run(lambda h: h * 1, site), reference, rtol=0, atol=0)
        assert not torch.allclose(run(torch.zeros_like, site), reference)
    # removing the hooks restored the model exactly
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference, rtol=0, atol=0)


def test_opt_mlp_site_is_flat_and_batch_shape_restores_it() -> None:
    model, tokenizer = build_tiny_model("opt")
    batch = _batch(tokenizer)
    module = site_module(model, 0, "mlp")
    raw: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: raw.append(output_tensor(out)))
    with torch.no_grad():
        model(**batch)
    handle.remove()
    b, s = batch["input_ids"].shape
    assert raw[0].shape == (b * s, D_MODEL)
    assert output_tensor(raw[0], (b, s)).shape == (b, s, D_MODEL)
    with pytest.raises(ModelError, match="flattened site output"):
        output_tensor(raw[0], (b + 1, s))
    # an edit computed on the (batch, seq, d) view fits back into the flat output
    assert replace_output(raw[0], output_tensor(raw[0], (b, s))).shape == (b * s, D_MODEL)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", (0, 1, 2, 3, 4)),
        ("last-2", (3, 4)),
        ("first-1", (0,)),
        ("last-5", (0, 1, 2, 3, 4)),
        ((4, 0, 2), (0, 2, 4)),
        ((3,), (3,)),
    ],
)
def test_resolve_layers(spec: Any, expected: tuple[int, ...]) -> None:
    assert resolve_layers(spec, 5) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("last-6", "0..4"),
        ("first-9", "0..4"),
        ((0, 5), "0..4"),
        ((-1,), "0..4"),
        ((1, 1), "distinct"),
        ((), "non-empty"),
        ("middle-2", "'all', 'last-L'"),
        ("last-0", "'all', 'last-L'"),
    ],
)
def test_resolve_layers_errors_name_the_valid_range(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_layers(spec, 5)


def test_template_override_works_and_ignores_site() -> None:
    model, tokenizer = build_tiny_model("llama")
    module = site_module(model, 2, "not-a-site", template="model.layers.{layer}.mlp.down_proj")
    assert module is model.model.layers[2].mlp.down_proj
    seen = _capture(model, {2: module}, _batch(tokenizer))
    assert seen[2].shape[-1] == D_MODEL


def test_template_errors() -> None:
    model, _ = build_tiny_model("llama")
    with pytest.raises(ModelError, match=r"site_template.*model\.layers\.0\.nope"):
        site_module(model, 0, "mlp", template="model.layers.{layer}.nope")
    with pytest.raises(ConfigError, match=r"\{layer\}"):
        site_module(model, 0, "mlp", template="model.layers.0.mlp")


def test_bad_site_and_layer() -> None:
    model, _ = build_tiny_model("gpt2")
    with pytest.raises(ConfigError, match="residual, mlp, attn"):
        site_module(model, 0, "embeddings")
    with pytest.raises(ConfigError, match=r"0\.\.2"):
        site_module(model, 3, "residual")


class _Unknown(torch.nn.Module):
    """A model whose blocks live where no known architecture keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.config = type("Cfg", (), {"model_type": "mystery", "hidden_size": 8})()
        self.stack = torch.nn.ModuleList([torch.nn.Linear(8, 8) for _ in range(2)])


def test_unknown_architecture_names_the_override_and_model_type() -> None:
    model = _Unknown()
    with pytest.raises(ModelError, match=r"collect\.site_template.*") as info:
        site_module(model, 0, "residual")
    assert "mystery" in str(info.value)
    # the override reaches any module
    assert site_module(model, 1, "residual", template="stack.{layer}") is model.stack[1]


class _Nested(torch.nn.Module):
    """Blocks at an unusual path, found through config.num_hidden_layers."""

    def __init__(self) -> None:
        super().__init__()
        self.config = type("Cfg", (), {"model_type": "nested", "num_hidden_layers": 3})()
        self.backbone = torch.nn.Module()
        self.backbone.norms = torch.nn.ModuleList([torch.nn.LayerNorm(8)])
        self.backbone.blocks = torch.nn.ModuleList([torch.nn.Linear(8, 8) for _ in range(3)])


def test_unknown_wrapper_found_by_layer_count() -> None:
    model = _Nested()
    blocks = model.get_submodule("backbone.blocks")
    assert decoder_blocks(model) == list(blocks.children())
    assert site_module(model, 2, "residual") is model.get_submodule("backbone.blocks.2")
    with pytest.raises(ModelError, match=r"nested.*collect\.site_template"):
        site_module(model, 0, "mlp")


def test_block_without_known_mlp_names_the_override() -> None:
    model, _ = build_tiny_model("llama")
    del model.model.layers[0].mlp
    with pytest.raises(ModelError, match=r"llama.*collect\.site_template"):
        site_module(model, 0, "mlp")


def test_output_structures() -> None:
    hidden = torch.randn(2, 3, 4)
    extra = torch.randn(2, 3)
    pair = namedtuple("pair", "hidden extra")
    cases: list[Any] = [
        hidden,
        (hidden, extra),
        [hidden, None],
        pair(hidden, extra),
        BaseModelOutputWithPast(last_hidden_state=hidden),
        OrderedDict(h=hidden, e=extra),
    ]
    new = torch.zeros_like(hidden)
    for output in cases:
        assert output_tensor(output) is hidden
        replaced = replace_output(output, new)
        assert type(replaced) is type(output)
        assert output_tensor(replaced) is new
        assert output_tensor(output) is hidden  # the original is not modified
    assert replace_output((hidden, extra), new)[1] is extra
    with pytest.raises(ModelError, match="site output"):
        output_tensor((None, hidden))
    with pytest.raises(ModelError, match="site output"):
        output_tensor("text")
