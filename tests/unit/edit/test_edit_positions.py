"""Position modes: which tokens an edit touches (all, skip-first, generated), padded and cached."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from synthetic_projections import in_memory_edit
from tiny_models import build_tiny_model

from sea_dist.edit import apply_edit
from sea_dist.errors import ConfigError, ModelError
from sea_dist.layers import output_tensor, site_module

ARCHS = ("llama", "gpt2", "gpt_neox", "qwen2")
TEXTS = ("The cat sat on the mat", "Hi there", "A longer prompt, with more bytes in it")
ANSWER = (3, 2, 5)
"""Answer tokens at the end of each text: the rest is its prompt."""


def _batch(tokenizer: Any, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """TEXTS with BOS, padded on ``side``: ``(ids, mask)``, both ``(3, width)`` int64."""
    rows = [[tokenizer.bos_token_id, *tokenizer(text)["input_ids"]] for text in TEXTS]
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        cols = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, cols] = torch.tensor(row)
        mask[i, cols] = 1
    return ids, mask


def _prompt_lengths(mask: torch.Tensor) -> torch.Tensor:
    return mask.sum(-1) - torch.tensor(ANSWER)


def _expected(mode: str, mask: torch.Tensor) -> torch.Tensor:
    """``(batch, seq)`` bool: the tokens ``mode`` must edit (module doc of sea_dist.edit.hooks)."""
    real = mask.bool()
    count = mask.cumsum(-1)
    if mode == "all":
        return torch.ones_like(real)
    if mode == "skip-first":
        return ~(real & (count == 1))
    return real & (count > _prompt_lengths(mask)[:, None])


class _Recorder:
    """Records the site's output (after the edit hook, registered before this one) per call."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls: list[torch.Tensor] = []
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.calls.append(output_tensor(output).detach().clone())

    def remove(self) -> None:
        self._handle.remove()


def _states(model: torch.nn.Module, module: torch.nn.Module, **inputs: Any) -> torch.Tensor:
    recorder = _Recorder(module)
    with torch.no_grad():
        model(**inputs)
    recorder.remove()
    return recorder.calls[0]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("mode", ["all", "skip-first", "generated"])
def test_each_mode_edits_exactly_its_tokens(arch: str, side: str, mode: str) -> None:
    model, tokenizer = build_tiny_model(arch)
    # one edited layer: its input is unedited, so each token's state there is either the
    # unedited one or the all-positions one, bit for bit
    edit = in_memory_edit(model, layers=[1], site="residual", combine="l2", seed=11)
    module = site_module(model, 1, "residual")
    ids, mask = _batch(tokenizer, side)
    inputs = {"input_ids": ids, "attention_mask": mask}
    plain = _states(model, module, **inputs)
    with apply_edit(model, edit, positions="all"):
        full = _states(model, module, **inputs)
    with apply_edit(model, edit, positions=mode) as handle:
        assert handle.positions == mode
        with handle.prompt_lengths(_prompt_lengths(mask)):
            got = _states(model, module, **inputs)
    edited = _expected(mode, mask)
    assert edited.any() and not (mode != "all" and edited.all())
    assert torch.equal(got[edited], full[edited])
    assert torch.equal(got[~edited], plain[~edited])
    assert not torch.allclose(full[edited], plain[edited], atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_generated_leaves_prompt_logits_of_a_scored_answer_unedited(arch: str, side: str) -> None:
    """Every layer edited: prompt tokens never see an answer token, so their logits stay put."""
    model, tokenizer = build_tiny_model(arch)
    edit = in_memory_edit(model, site="residual", combine="l2", seed=12)
    ids, mask = _batch(tokenizer, side)
    inputs = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        plain = model(**inputs).logits
        with apply_edit(model, edit, positions="generated") as handle:
            unset = model(**inputs).logits  # no prompt lengths, empty cache: all prompt
            with handle.prompt_lengths(_prompt_lengths(mask).tolist()):
                scored = model(**inputs).logits
            cleared = model(**inputs).logits  # the block cleared the lengths again
    assert torch.equal(unset, plain) and torch.equal(cleared, plain)
    real = mask.bool()
    prompt = real & (mask.cumsum(-1) <= _prompt_lengths(mask)[:, None])
    answer = real & ~prompt
    torch.testing.assert_close(scored[prompt], plain[prompt], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(scored[answer], plain[answer], atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_generated_in_kv_cache_decoding(arch: str) -> None:
    model, tokenizer = build_tiny_model(arch)
    edit = in_memory_edit(model, site="residual", combine="l2", seed=13)
    module = site_module(model, 2, "residual")
    ids, mask = _batch(tokenizer, "left")
    new = 5
    options: dict[str, Any] = dict(
        attention_mask=mask,
        max_new_tokens=new,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.no_grad():
        plain_gen = model.generate(ids, **options)
        with apply_edit(model, edit, positions="generated") as handle:
            recorder = _Recorder(module)
            cached = model.generate(ids, use_cache=True, **options)
            recorder.remove()
            with handle.prompt_lengths(mask.sum(-1)):
                cached_lengths = model.generate(ids, use_cache=True, **options)
                uncached = model.generate(ids, use_cache=False, **options)
                sequences = cached.sequences
                full_mask = torch.cat([mask, torch.ones(len(ids), new, dtype=mask.dtype)], -1)
                position_ids = (full_mask.cumsum(-1) - 1).clamp(min=0)
                inputs = dict(
                    input_ids=sequences, attention_mask=full_mask, position_ids=position_ids
                )
                full = _states(model, module, **inputs)
        plain = _states(model, module, **inputs)
    width = ids.shape[1]
    prefill, steps = recorder.calls[0], torch.cat(recorder.calls[1:], dim=1)
    assert prefill.shape[1] == width and steps.shape[1] == new - 1
    # the prompt's states are unedited, in generate's prefill and in one full forward
    torch.testing.assert_close(prefill, plain[:, :width], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full[:, :width], plain[:, :width], atol=1e-6, rtol=1e-6)
    # decoded tokens are edited: each step's state is the full forward's at that position
    decoded = slice(width, width + new - 1)
    torch.testing.assert_close(steps, full[:, decoded], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(steps, plain[:, decoded], atol=1e-3)
    # greedy: with the cache = without it (prompt lengths given) = with the cache and lengths
    for other in (uncached, cached_lengths):
        assert torch.equal(other.sequences, cached.sequences)
        torch.testing.assert_close(
            torch.stack(other.logits), torch.stack(cached.logits), atol=1e-5, rtol=1e-5
        )
    # the first token comes from the unedited prompt; later ones from edited states
    assert torch.equal(cached.logits[0], plain_gen.logits[0])
    assert not torch.allclose(
        torch.stack(cached.logits[1:]), torch.stack(plain_gen.logits[1:]), atol=1e-3
    )


def test_lengths_repeat_over_beams_and_must_fit_the_batch() -> None:
    model, tokenizer = build_tiny_model("llama")
    edit = in_memory_edit(model, site="residual", seed=14)
    ids, mask = _batch(tokenizer, "right")
    lengths = _prompt_lengths(mask)
    twice = {
        "input_ids": ids.repeat_interleave(2, 0),
        "attention_mask": mask.repeat_interleave(2, 0),
    }
    with torch.no_grad(), apply_edit(model, edit, positions="generated") as handle:
        handle.set_prompt_lengths(lengths.repeat_interleave(2))
        explicit = model(**twice).logits
        handle.set_prompt_lengths(lengths)
        repeated = model(**twice).logits
        assert torch.equal(explicit, repeated)
        handle.set_prompt_lengths(lengths[:2])
        with pytest.raises(ModelError, match="prompt lengths: expected one per sequence"):
            model(input_ids=ids, attention_mask=mask)
        handle.set_prompt_lengths(None)  # the failed call left no stale state behind
        assert torch.equal(
            model(input_ids=ids, attention_mask=mask).logits, _plain(model, ids, mask)
        )
    for bad in ([[1, 2]], [1.5, 2.0], [-1, 2, 3]):
        with pytest.raises(ConfigError, match="prompt lengths"):
            handle.set_prompt_lengths(bad)  # type: ignore[arg-type]


def _plain(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def test_skip_first_token_is_an_alias_of_skip_first() -> None:
    model, tokenizer = build_tiny_model("gpt2")
    edit = in_memory_edit(model, site="residual", seed=15)
    ids, mask = _batch(tokenizer, "left")
    with apply_edit(model, edit, skip_first_token=True) as alias:
        assert alias.positions == "skip-first"
        via_alias = _plain(model, ids, mask)
    with apply_edit(model, edit, positions="skip-first"):
        via_mode = _plain(model, ids, mask)
    assert torch.equal(via_alias, via_mode)
    with apply_edit(model, edit, skip_first_token=False) as handle:
        assert handle.positions == "all"
    with apply_edit(model, edit, positions="generated", skip_first_token=False) as handle:
        assert handle.positions == "generated"
    with pytest.raises(ConfigError, match="skip_first_token=True"):
        apply_edit(model, edit, positions="generated", skip_first_token=True)
    with pytest.raises(ConfigError, match="positions: expected all / skip-first / generated"):
        apply_edit(model, edit, positions="answer")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_positions_need_a_call_of_the_edited_model() -> None:
    model, tokenizer = build_tiny_model("llama")
    edit = in_memory_edit(model, site="residual", seed=16)
    ids, mask = _batch(tokenizer, "left")
    with torch.no_grad(), apply_edit(model, edit, positions="generated"):
        # the decoder stack alone is a sub-module: the top-level hooks never see this call
        with pytest.raises(ModelError, match="positions='generated' needs its input_ids"):
            model.model(input_ids=ids, attention_mask=mask)
        model(input_ids=ids, attention_mask=mask)  # the model itself is fine


@pytest.mark.parametrize("arch", ARCHS)
def test_generated_without_a_mask_counts_absolute_positions(arch: str) -> None:
    """One unpadded sequence and no mask (generate drops an all-ones mask): count = position + 1."""
    model, tokenizer = build_tiny_model(arch)
    edit = in_memory_edit(model, layers=[0], site="residual", combine="average", seed=17)
    module = site_module(model, 0, "residual")
    ids = _batch(tokenizer, "left")[0][2:]  # the longest text: no padding
    prompt = 4
    plain = _states(model, module, input_ids=ids)
    with apply_edit(model, edit) as handle:
        full = _states(model, module, input_ids=ids)
    with apply_edit(model, edit, positions="generated") as handle:
        with handle.prompt_lengths([prompt]):
            got = _states(model, module, input_ids=ids)
            options: dict[str, Any] = dict(
                max_new_tokens=4, do_sample=False, output_logits=True, return_dict_in_generate=True
            )
            cached = model.generate(ids[:, :prompt], use_cache=True, **options)
            uncached = model.generate(ids[:, :prompt], use_cache=False, **options)
    assert torch.equal(got[:, :prompt], plain[:, :prompt])
    assert torch.equal(got[:, prompt:], full[:, prompt:])
    assert not torch.allclose(full[:, prompt:], plain[:, prompt:], atol=1e-3)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(
        torch.stack(cached.logits), torch.stack(uncached.logits), atol=1e-5, rtol=1e-5
    )
