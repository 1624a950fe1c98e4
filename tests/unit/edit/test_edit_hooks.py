"""apply_edit on tiny models: exact removal, context manager, KV cache, padding, the math itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from synthetic_projections import in_memory_edit, reference_edit, write_fit_folder
from tiny_models import build_tiny_model

from sea_dist.edit import EditHandle, apply_edit, load_edit
from sea_dist.layers import output_tensor, site_module

ARCHS = ("llama", "gpt2", "gpt_neox", "qwen2")
SITES = ("residual", "mlp", "attn")
PROMPTS = ("The cat sat on", "Hi", "A longer prompt, with more bytes in it")


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _ids(tokenizer: Any, text: str) -> torch.Tensor:
    return torch.tensor([[tokenizer.bos_token_id, *tokenizer(text)["input_ids"]]])


def _logits(model: torch.nn.Module, ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, **kwargs).logits


def _left_padded(tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Left-padded batch of PROMPTS (with BOS), its mask, and each prompt's ids alone."""
    alone = [_ids(tokenizer, text) for text in PROMPTS]
    width = max(ids.shape[1] for ids in alone)
    batch = torch.full((len(alone), width), tokenizer.pad_token_id)
    mask = torch.zeros(len(alone), width, dtype=torch.long)
    for row, ids in enumerate(alone):
        batch[row, width - ids.shape[1] :] = ids[0]
        mask[row, width - ids.shape[1] :] = 1
    return batch, mask, alone


def _capture(module: torch.nn.Module, store: list[torch.Tensor]) -> Any:
    def hook(mod: torch.nn.Module, args: Any, output: Any) -> None:
        store.append(output_tensor(output).detach().clone())

    return module.register_forward_hook(hook)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("site", SITES)
def test_removal_restores_model_bit_for_bit(arch: str, site: str, tmp_path: Path) -> None:
    model, tokenizer = build_tiny_model(arch)
    folder = write_fit_folder(tmp_path / "fit", model, site=site)
    ids = _ids(tokenizer, PROMPTS[0])
    before_logits, before_state = _logits(model, ids), _snapshot(model)

    handle = apply_edit(model, str(folder))
    edited = _logits(model, ids)
    assert isinstance(handle, EditHandle) and handle.active
    assert not torch.allclose(edited, before_logits, atol=1e-3)
    handle.remove()
    handle.remove()  # double remove is a no-op

    assert not handle.active
    assert torch.equal(_logits(model, ids), before_logits)
    after_state = model.state_dict()
    assert after_state.keys() == before_state.keys()
    assert all(torch.equal(after_state[k], before_state[k]) for k in before_state)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_context_manager_removes_hooks_even_on_error(tmp_path: Path) -> None:
    model, tokenizer = build_tiny_model("llama")
    edit = load_edit(write_fit_folder(tmp_path / "fit", model))
    ids = _ids(tokenizer, PROMPTS[0])
    plain = _logits(model, ids)
    with apply_edit(model, edit, layers="last-1") as handle:
        assert handle.layers == (2,)
        inside = _logits(model, ids)
    assert not torch.allclose(inside, plain, atol=1e-3)
    assert torch.equal(_logits(model, ids), plain)
    with pytest.raises(RuntimeError, match="boom"), apply_edit(model, edit):
        raise RuntimeError("boom")
    assert torch.equal(_logits(model, ids), plain)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("combine", ["l2", "average"])
def test_hook_output_equals_reference_formula(arch: str, combine: str) -> None:
    model, tokenizer = build_tiny_model(arch)
    layer = 1
    edit = in_memory_edit(model, layers=[layer], site="mlp", combine=combine, k_pos=6, k_neg=3)
    module = site_module(model, layer, "mlp")
    ids = _ids(tokenizer, PROMPTS[2])
    plain: list[torch.Tensor] = []
    edited: list[torch.Tensor] = []
    capture = _capture(module, plain)
    _logits(model, ids)
    capture.remove()
    with apply_edit(model, edit):
        capture = _capture(module, edited)  # registered after the edit hook: sees its output
        _logits(model, ids)
        capture.remove()
    proj = edit.layers[layer]
    expected = reference_edit(plain[0], proj.u_pos, proj.u_neg, proj.mean, combine)
    torch.testing.assert_close(edited[0].double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_l2_keeps_each_tokens_norm(arch: str) -> None:
    model, tokenizer = build_tiny_model(arch)
    edit = in_memory_edit(model, site="residual", combine="l2", k_pos=3, k_neg=8)
    mean = edit.layers[0].mean
    assert mean is not None
    module = site_module(model, 0, "residual")
    batch, mask, _ = _left_padded(tokenizer)
    plain: list[torch.Tensor] = []
    edited: list[torch.Tensor] = []
    capture = _capture(module, plain)
    _logits(model, batch, attention_mask=mask)
    capture.remove()
    with apply_edit(model, edit, layers=[0]):
        capture = _capture(module, edited)
        _logits(model, batch, attention_mask=mask)
        capture.remove()
    norm_before = (plain[0] - mean).norm(dim=-1)
    norm_after = (edited[0] - mean).norm(dim=-1)
    torch.testing.assert_close(norm_after, norm_before, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(edited[0], plain[0], atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("combine", ["l2", "average"])
def test_full_positive_basis_is_identity(arch: str, combine: str) -> None:
    """U+ = I and U- empty keep every direction: average gives (h + h) / 2, l2 gives h."""
    model, tokenizer = build_tiny_model(arch)
    d = model.config.hidden_size
    generator = torch.Generator().manual_seed(1)
    projections = {
        layer: (torch.eye(d), torch.zeros(d, 0), torch.randn(d, generator=generator))
        for layer in range(3)
    }
    edit = in_memory_edit(model, combine=combine, projections=projections)
    ids = _ids(tokenizer, PROMPTS[2])
    plain = _logits(model, ids)
    with apply_edit(model, edit):
        torch.testing.assert_close(_logits(model, ids), plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("skip_first_token", [False, True])
def test_generate_with_kv_cache_equals_without(arch: str, skip_first_token: bool) -> None:
    model, tokenizer = build_tiny_model(arch)
    edit = in_memory_edit(model, site="residual", combine="l2", seed=3)
    batch, mask, _ = _left_padded(tokenizer)
    options: dict[str, Any] = dict(
        attention_mask=mask,
        max_new_tokens=8,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.no_grad(), apply_edit(model, edit, skip_first_token=skip_first_token):
        cached = model.generate(batch, use_cache=True, **options)
        uncached = model.generate(batch, use_cache=False, **options)
    with torch.no_grad():
        plain = model.generate(batch, use_cache=True, **options)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(
        torch.stack(cached.logits), torch.stack(uncached.logits), atol=1e-5, rtol=1e-5
    )
    assert not torch.allclose(
        torch.stack(cached.logits[:1]), torch.stack(plain.logits[:1]), atol=1e-3
    )


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("skip_first_token", [False, True])
def test_left_padded_batch_equals_each_sequence_alone(arch: str, skip_first_token: bool) -> None:
    model, tokenizer = build_tiny_model(arch)
    edit = in_memory_edit(model, site="residual", combine="l2", seed=4)
    batch, mask, alone = _left_padded(tokenizer)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    options: dict[str, Any] = dict(
        max_new_tokens=6,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.no_grad(), apply_edit(model, edit, skip_first_token=skip_first_token):
        together = _logits(model, batch, attention_mask=mask, position_ids=position_ids)
        generated = model.generate(batch, attention_mask=mask, **options)
        for row, ids in enumerate(alone):
            n = ids.shape[1]
            single = _logits(model, ids)
            torch.testing.assert_close(together[row, -n:], single[0], atol=1e-5, rtol=1e-5)
            one = model.generate(ids, attention_mask=torch.ones_like(ids), **options)
            assert torch.equal(generated.sequences[row, -6:], one.sequences[0, -6:])
            torch.testing.assert_close(
                torch.stack(generated.logits)[:, row],
                torch.stack(one.logits)[:, 0],
                atol=1e-5,
                rtol=1e-5,
            )


@pytest.mark.parametrize("arch", ARCHS)
def test_skip_first_token_leaves_the_first_real_token_unedited(arch: str) -> None:
    model, tokenizer = build_tiny_model(arch)
    edit = in_memory_edit(model, site="residual", combine="average", seed=5)
    batch, mask, alone = _left_padded(tokenizer)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    plain = _logits(model, batch, attention_mask=mask, position_ids=position_ids)
    with apply_edit(model, edit, skip_first_token=True):
        skipped = _logits(model, batch, attention_mask=mask, position_ids=position_ids)
        no_mask = _logits(model, alone[0])
    with apply_edit(model, edit, skip_first_token=False):
        edited = _logits(model, batch, attention_mask=mask, position_ids=position_ids)
    first = (mask.cumsum(-1) == 1) & (mask == 1)
    # causal attention: the first real token only sees itself, so skipping its edit at every
    # layer leaves its logits exactly those of the unedited model
    torch.testing.assert_close(skipped[first], plain[first], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(edited[first], plain[first], atol=1e-3)
    later = mask.bool() & ~first
    assert not torch.allclose(skipped[later], plain[later], atol=1e-3)
    torch.testing.assert_close(no_mask[0, 0], _logits(model, alone[0])[0, 0])


@pytest.mark.parametrize("name", ["tanh", "elu", "sqexp"])
def test_phi_sea_edits_in_feature_space(name: str) -> None:
    from sea_dist import feature_maps

    model, tokenizer = build_tiny_model("llama")
    layer, scale = 1, 2.0
    edit = in_memory_edit(
        model,
        layers=[layer],
        site="mlp",
        combine="l2",
        feature_map=name,
        scale=scale,
        mean_scale=0.1,
    )
    module = site_module(model, layer, "mlp")
    ids = _ids(tokenizer, PROMPTS[0])
    plain: list[torch.Tensor] = []
    edited: list[torch.Tensor] = []
    capture = _capture(module, plain)
    _logits(model, ids)
    capture.remove()
    with apply_edit(model, edit):
        capture = _capture(module, edited)
        _logits(model, ids)
        capture.remove()
    proj = edit.layers[layer]
    h = plain[0].double()
    y = reference_edit(feature_maps.phi(h, name, scale), proj.u_pos, proj.u_neg, proj.mean, "l2")
    expected = feature_maps.phi_inverse(y, name, scale, reference=h)
    torch.testing.assert_close(edited[0].double(), expected, atol=1e-4, rtol=1e-4)


def test_phi_sea_identity_basis_returns_h() -> None:
    from sea_dist.edit import LayerProjection, edit_activations

    d = 8
    h = torch.randn(2, 5, d, generator=torch.Generator().manual_seed(0))
    proj = LayerProjection(0, torch.eye(d), torch.zeros(d, 0), 0.1 * torch.ones(d))
    for name in ("tanh", "elu", "sqexp"):
        out = edit_activations(h, proj, combine="average", feature_map=name, scale=3.0)
        torch.testing.assert_close(out, h, atol=1e-4, rtol=1e-4)


def test_bfloat16_model_edits_in_float32_and_keeps_dtype() -> None:
    model, tokenizer = build_tiny_model("llama")
    model = model.to(torch.bfloat16)
    edit = in_memory_edit(model, site="mlp", combine="l2")
    module = site_module(model, 2, "mlp")
    edited: list[torch.Tensor] = []
    with apply_edit(model, edit):
        capture = _capture(module, edited)
        _logits(model, _ids(tokenizer, PROMPTS[0]))
        capture.remove()
    assert edited[0].dtype == torch.bfloat16
