"""Edit strength alpha: 0 is the identity bit for bit, 1 the full edit, between the formula."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from synthetic_projections import in_memory_edit
from tiny_models import build_tiny_model

from sea_dist.edit import LayerOperator, LayerProjection, apply_edit, edit_activations
from sea_dist.edit.transform import EPS, feature_map_pair
from sea_dist.errors import ConfigError
from sea_dist.layers import output_tensor, site_module

ARCHS = ("llama", "gpt2", "gpt_neox", "qwen2")
SITES = ("residual", "mlp", "attn")
IDS = torch.tensor([[1, 60, 61, 62, 63, 64, 65], [1, 70, 71, 72, 73, 74, 75]])


def numpy_edit(
    h: np.ndarray,
    u_pos: np.ndarray,
    u_neg: np.ndarray,
    mean: np.ndarray | None,
    combine: str,
    alpha: float,
) -> np.ndarray:
    """The module doc's formula in float64 numpy, with dense projections, token by token."""
    m = np.zeros(h.shape[-1]) if mean is None else mean.astype(np.float64)
    x = h.astype(np.float64) - m
    p = x @ (u_pos @ u_pos.T)
    n = x - x @ (u_neg @ u_neg.T)
    if combine == "l2":
        s = x + alpha * (p + n - x)
        norm_s = np.maximum(np.linalg.norm(s, axis=-1, keepdims=True), EPS)
        y = s * np.linalg.norm(x, axis=-1, keepdims=True) / norm_s
    else:
        y = x + alpha * ((p + n) / 2 - x)
    return y + m


def pre_alpha_edit(op: LayerOperator, h: torch.Tensor) -> torch.Tensor:
    """``LayerOperator.__call__`` exactly as it was before alpha existed (for bit equality)."""
    shape = h.shape
    h32 = h.reshape(-1, shape[-1]).to(torch.float32)
    x = h32 if op.phi is None else op.phi[0](h32)
    if op.mean is not None:
        x = x - op.mean
    s = torch.addmm(x, x @ op.basis, op.signed)
    if op.combine == "l2":
        scale = x.norm(dim=-1, keepdim=True) / s.norm(dim=-1, keepdim=True).clamp_min(EPS)
        s = s * scale if op.mean is None else torch.addcmul(op.mean, s, scale)
    else:
        s = s * 0.5 if op.mean is None else torch.add(op.mean, s, alpha=0.5)
    if op.phi is not None:
        s = op.phi[1](s, h32)
    return s.to(h.dtype).reshape(shape)


def _projection(d: int, k_pos: int, k_neg: int, centred: bool, seed: int = 0) -> LayerProjection:
    generator = torch.Generator().manual_seed(seed)
    u_pos, _ = torch.linalg.qr(torch.randn(d, k_pos, generator=generator, dtype=torch.float64))
    u_neg, _ = torch.linalg.qr(torch.randn(d, k_neg, generator=generator, dtype=torch.float64))
    mean = 0.5 * torch.randn(d, generator=generator) if centred else None
    return LayerProjection(0, u_pos.float(), u_neg.float(), mean)


def _site_state(model: torch.nn.Module, module: torch.nn.Module) -> torch.Tensor:
    """The site's output (after any edit hook registered before this call) on IDS."""
    seen: list[torch.Tensor] = []

    def hook(mod: torch.nn.Module, args: Any, output: Any) -> None:
        seen.append(output_tensor(output).detach().clone())

    handle = module.register_forward_hook(hook)
    with torch.no_grad():
        model(input_ids=IDS)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("combine", ["l2", "average"])
@pytest.mark.parametrize("centred", [True, False])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_operator_matches_numpy_formula(combine: str, centred: bool, alpha: float) -> None:
    d = 16
    proj = _projection(d, 5, 3, centred)
    h = 2.0 * torch.randn(4, 7, d, generator=torch.Generator().manual_seed(1))
    out = edit_activations(h, proj, combine=combine, alpha=alpha)
    mean = None if proj.mean is None else proj.mean.numpy()
    expected = numpy_edit(h.numpy(), proj.u_pos.numpy(), proj.u_neg.numpy(), mean, combine, alpha)
    np.testing.assert_allclose(out.numpy(), expected, atol=2e-5, rtol=2e-5)
    assert out.shape == h.shape and out.dtype == h.dtype


@pytest.mark.parametrize("combine", ["l2", "average"])
@pytest.mark.parametrize("centred", [True, False])
@pytest.mark.parametrize("feature_map", ["linear", "tanh", "sqexp"])
def test_alpha_one_is_the_pre_alpha_edit_bit_for_bit(
    combine: str, centred: bool, feature_map: str
) -> None:
    d = 16
    proj = _projection(d, 4, 6, centred, seed=2)
    phi = feature_map_pair(feature_map, 2.0)
    h = torch.randn(3, 5, d, generator=torch.Generator().manual_seed(3))
    for dtype in (torch.float32, torch.bfloat16):
        x = h.to(dtype)
        full = LayerOperator.build(proj, combine, phi, alpha=1.0)
        assert torch.equal(full(x), pre_alpha_edit(full, x))
        assert torch.equal(LayerOperator.build(proj, combine, phi)(x), full(x))


@pytest.mark.parametrize("feature_map", ["linear", "tanh", "elu", "sqexp"])
def test_alpha_zero_operator_returns_a_copy_of_its_input(feature_map: str) -> None:
    proj = _projection(8, 3, 2, True)
    h = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    out = edit_activations(h, proj, combine="l2", feature_map=feature_map, alpha=0.0)
    assert torch.equal(out, h) and out.dtype == h.dtype
    assert out.data_ptr() != h.data_ptr()  # a copy: callers may write into it


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("site", SITES)
def test_alpha_zero_leaves_the_model_bit_for_bit(arch: str, site: str) -> None:
    model, _ = build_tiny_model(arch)
    edit = in_memory_edit(model, site=site, combine="l2", seed=5)
    module = site_module(model, 1, site)
    with torch.no_grad():
        plain = model(input_ids=IDS).logits
    plain_state = _site_state(model, module)
    for positions in ("all", "skip-first", "generated"):
        with apply_edit(model, edit, alpha=0.0, positions=positions) as handle:
            assert handle.active and handle.alpha == 0.0
            with torch.no_grad():
                logits = model(input_ids=IDS).logits
            state = _site_state(model, module)
        assert torch.equal(logits, plain)
        assert torch.equal(state, plain_state)
    with apply_edit(model, edit, alpha=1e-3), torch.no_grad():  # and any alpha > 0 edits
        assert not torch.equal(model(input_ids=IDS).logits, plain)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("combine", ["l2", "average"])
def test_alpha_one_equals_the_default_edit(arch: str, combine: str) -> None:
    model, _ = build_tiny_model(arch)
    edit = in_memory_edit(model, site="mlp", combine=combine, seed=6)
    with torch.no_grad():
        with apply_edit(model, edit):
            default = model(input_ids=IDS).logits
        with apply_edit(model, edit, alpha=1.0):
            explicit = model(input_ids=IDS).logits
        plain = model(input_ids=IDS).logits
    assert torch.equal(default, explicit)
    assert not torch.allclose(default, plain, atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("combine", ["l2", "average"])
@pytest.mark.parametrize("centred", [True, False])
def test_hooked_intermediate_alpha_matches_numpy(arch: str, combine: str, centred: bool) -> None:
    model, _ = build_tiny_model(arch)
    layer, alpha = 1, 0.4
    edit = in_memory_edit(
        model, layers=[layer], site="residual", combine=combine, centred=centred, seed=7
    )
    module = site_module(model, layer, "residual")
    plain = _site_state(model, module)
    with apply_edit(model, edit, alpha=alpha):
        edited = _site_state(model, module)
    proj = edit.layers[layer]
    mean = None if proj.mean is None else proj.mean.numpy()
    expected = numpy_edit(
        plain.numpy(), proj.u_pos.numpy(), proj.u_neg.numpy(), mean, combine, alpha
    )
    np.testing.assert_allclose(edited.numpy(), expected, atol=1e-5, rtol=1e-5)
    full = numpy_edit(plain.numpy(), proj.u_pos.numpy(), proj.u_neg.numpy(), mean, combine, 1.0)
    # strictly between the unedited and the fully edited state
    assert not np.allclose(edited.numpy(), plain.numpy(), atol=1e-4)
    assert not np.allclose(edited.numpy(), full, atol=1e-4)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), float("inf"), True])
def test_alpha_outside_zero_one_is_refused(alpha: Any) -> None:
    model, _ = build_tiny_model("llama")
    edit = in_memory_edit(model)
    with pytest.raises(ConfigError, match=r"alpha: expected a number in \[0, 1\]"):
        apply_edit(model, edit, alpha=alpha)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ConfigError, match="alpha"):
        edit_activations(torch.zeros(2, 32), edit.layers[0], alpha=alpha)
