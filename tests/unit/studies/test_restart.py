"""RestartCache: restarted forward passes equal full ones, files are reused, misfits fall back.

The reference is always the same model called in full, with the same edit hooks installed.
Layers are counted with a global module hook (``register_module_forward_hook``), not a hook on
the layer itself: a hook below the restart layer is refused by the cache, on purpose.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import ARCHITECTURES, build_tiny_model, tiny_config, tiny_loaded_model
from transformers import AutoModelForCausalLM

from sea_dist.edit import LayerProjection, SeaEdit, apply_edit
from sea_dist.errors import ModelError
from sea_dist.evaluate.loglik import EncodedPairs
from sea_dist.layers import decoder_blocks, hidden_size, num_layers
from sea_dist.studies.restart import RestartCache, RestartModel

PAIRS = [
    ("Q: Is the sky blue?\nA:", " Yes"),
    ("Q: Is the sky blue?\nA:", " No, it is green"),
    ("Q: What is 2+2?\nA:", " 4"),
    ("Q: What is 2+2?\nA:", " Four, of course"),
    ("Q: Who?\nA:", " Me"),
]


def _edit(model: torch.nn.Module, layers: list[int], site: str = "residual") -> SeaEdit:
    """Random orthonormal projections (as tests/unit/edit/synthetic_projections.py builds)."""
    d = hidden_size(model)
    generator = torch.Generator().manual_seed(sum(layers))

    def orthonormal(k: int) -> torch.Tensor:
        q, _ = torch.linalg.qr(torch.randn(d, k, generator=generator, dtype=torch.float64))
        return q.to(torch.float32).contiguous()

    return SeaEdit(
        layers={
            layer: LayerProjection(
                layer, orthonormal(5), orthonormal(4), 0.5 * torch.randn(d, generator=generator)
            )
            for layer in layers
        },
        site=site,
        site_template=None,
        combine="l2",
        feature_map="linear",
        feature_map_scale=1.0,
        centred=True,
        source="synthetic",
        model_id="tiny",
        architecture=str(model.config.model_type),  # type: ignore[union-attr]
        d_model=d,
        n_model_layers=num_layers(model),
    )


def _right_padded(seed: int = 0, lengths: tuple[int, ...] = (14, 9, 5)) -> dict[str, torch.Tensor]:
    """A right-padded batch (how score_spans pads): BOS, random bytes, pad id 0."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, 0] = 1
        ids[row, 1:length] = torch.randint(4, 260, (length - 1,), generator=generator)
        mask[row, :length] = 1
    return {"input_ids": ids, "attention_mask": mask}


@contextlib.contextmanager
def _count_calls(modules: list[torch.nn.Module]) -> Iterator[list[int]]:
    """Count forward calls of ``modules`` (by identity) with a global module hook."""
    counts = [0]
    wanted = {id(module) for module in modules}

    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        if id(module) in wanted:
            counts[0] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield counts
    finally:
        handle.remove()


def _logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("layer", [1, 2])
def test_restart_equals_full_pass_with_edits_above(arch: str, layer: int, tmp_path: Path) -> None:
    model, _ = build_tiny_model(arch)
    batch = _right_padded()
    cache = RestartCache(model, tmp_path, key=f"tiny-{arch}")
    view = cache.from_layer(layer)
    edited = list(range(layer, num_layers(model)))
    with apply_edit(model, _edit(model, edited), layers=edited, skip_first_token=True):
        full = _logits(model, batch)
        first = _logits(view, batch)  # full pass, captures, then checks a restart once
        with _count_calls(decoder_blocks(model)[:layer]) as lower:
            again = _logits(view, batch)  # restarted from the file
    assert cache.restartable(layer) is True
    assert lower[0] == 0
    assert cache.stats.full_forwards == 1 and cache.stats.files_read >= 1
    torch.testing.assert_close(first, full, rtol=0, atol=0)
    torch.testing.assert_close(again, full, rtol=0, atol=0)


@pytest.mark.parametrize("site", ["mlp", "attn"])
def test_restart_with_sub_module_sites_and_generated_positions(site: str, tmp_path: Path) -> None:
    """Sub-module edit hooks at the restart layer, alpha < 1, answer-only positions."""
    model, _ = build_tiny_model("llama")
    batch = _right_padded(seed=3)
    view = RestartCache(model, tmp_path, key="tiny-llama").from_layer(1)
    edit = _edit(model, [1, 2], site=site)
    with apply_edit(model, edit, layers=[1, 2], alpha=0.5, positions="generated") as handle:
        with handle.prompt_lengths(torch.tensor([6, 4, 2])):
            full = _logits(model, batch)
            first = _logits(view, batch)
            again = _logits(view, batch)
        unedited_prompt = _logits(view, batch)  # no prompt lengths: nothing edited
    torch.testing.assert_close(first, full, rtol=0, atol=0)
    torch.testing.assert_close(again, full, rtol=0, atol=0)
    torch.testing.assert_close(unedited_prompt, _logits(model, batch), rtol=0, atol=0)
    assert not torch.equal(full, unedited_prompt)  # the edit did something


def test_per_layer_settings_indexed_by_position_are_kept(tmp_path: Path) -> None:
    """Gemma 2 alternates sliding-window and full attention by layer index: a short window."""
    config = tiny_config("gemma2")
    config.sliding_window = 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    assert config.layer_types[1] != config.layer_types[2]
    batch = _right_padded(seed=1)
    cache = RestartCache(model, tmp_path, key="gemma2-window-3")
    for layer in (1, 2):
        with apply_edit(model, _edit(model, [2]), layers=[2]):
            full = _logits(model, batch)
            _logits(cache.from_layer(layer), batch)
            restarted = _logits(cache.from_layer(layer), batch)
        assert cache.restartable(layer) is True
        torch.testing.assert_close(restarted, full, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "opt"])
def test_encoded_pairs_scores_equal(arch: str, tmp_path: Path) -> None:
    model, tokenizer = build_tiny_model(arch)
    pairs = EncodedPairs.build(tokenizer, PAIRS)
    cache = RestartCache(model, tmp_path, key=f"tiny-{arch}")
    with apply_edit(model, _edit(model, [2]), layers=[2], skip_first_token=True):
        reference = pairs.score(model, batch_size=2)
        first = pairs.score(cache.from_layer(2), batch_size=2)
        full_passes = cache.stats.full_forwards
        second = pairs.score(cache.from_layer(2), batch_size=2)
    assert full_passes == 3  # one per batch of 2 (5 distinct pairs)
    assert cache.stats.full_forwards == full_passes  # the second scoring only restarted
    assert first.logprob.tolist() == reference.logprob.tolist()
    assert second.logprob.tolist() == reference.logprob.tolist()
    assert second.n_tokens.tolist() == reference.n_tokens.tolist()


def test_second_cache_over_same_folder_reuses_files(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    batches = [_right_padded(seed=s, lengths=(12, 7)) for s in range(3)]
    writer = RestartCache(model, tmp_path, key="tiny-llama")
    with apply_edit(model, _edit(model, [2]), layers=[2]):
        full = [_logits(model, b) for b in batches]
        for b in batches:
            _logits(writer.from_layer(2), b)
    files = sorted(writer.layer_folder(2).glob("*.safetensors"))
    assert len(files) == len(batches)  # one file per batch
    for path, b in zip(files, sorted(batches, key=lambda b: writer.path(2, **b).name)):
        assert path == writer.path(2, **b)
        assert load_file(str(path))["hidden_states"].shape == (2, 12, hidden_size(model))

    reader = RestartCache(model, tmp_path, key="tiny-llama")
    with apply_edit(model, _edit(model, [2]), layers=[2]):
        with _count_calls(decoder_blocks(model)[:2]) as lower:
            again = [_logits(reader.from_layer(2), b) for b in batches]
    assert lower[0] == 0
    assert reader.stats.full_forwards == 0 and reader.stats.verifications == 0
    assert reader.stats.files_read == len(batches) and reader.stats.files_written == 0
    for got, want in zip(again, full):
        torch.testing.assert_close(got, want, rtol=0, atol=0)

    other_key = RestartCache(model, tmp_path, key="tiny-llama@another-revision")
    _logits(other_key.from_layer(2), batches[0])
    assert other_key.stats.full_forwards == 1 and other_key.stats.files_read == 0


def test_interrupted_run_recomputes_only_missing_or_broken_files(tmp_path: Path) -> None:
    model, _ = build_tiny_model("qwen2")
    batches = [_right_padded(seed=s) for s in range(3)]
    cache = RestartCache(model, tmp_path, key="tiny-qwen2")
    for b in batches:
        _logits(cache.from_layer(1), b)
    cache.path(1, **batches[0]).unlink()  # never written
    cache.path(1, **batches[1]).write_bytes(b"\x00" * 10)  # not a safetensors file
    (cache.layer_folder(1) / ".leftover.tmp").write_bytes(b"partial")  # a crashed write
    resumed = RestartCache(model, tmp_path, key="tiny-qwen2")
    for b in batches:
        torch.testing.assert_close(
            _logits(resumed.from_layer(1), b), _logits(model, b), rtol=0, atol=0
        )
    assert resumed.stats.full_forwards == 2 and resumed.stats.files_written == 2
    assert resumed.stats.verifications == 0  # the verdict was stored by the first run


def test_capture_layers_fill_the_cache_in_one_unedited_pass(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    batch = _right_padded(seed=2)
    cache = RestartCache(model, tmp_path, key="tiny-llama", capture_layers={1, 2})
    _logits(cache.from_layer(1), batch)  # unedited baseline: captures layers 1 and 2
    assert cache.path(1, **batch).exists() and cache.path(2, **batch).exists()
    with apply_edit(model, _edit(model, [2]), layers=[2]):
        full = _logits(model, batch)
        with _count_calls(decoder_blocks(model)[:1]) as lowest:
            checked = _logits(cache.from_layer(2), batch)  # reference restarted from layer 1
            restarted = _logits(cache.from_layer(2), batch)
    assert lowest[0] == 0 and cache.stats.full_forwards == 1
    assert cache.restartable(2) is True
    torch.testing.assert_close(checked, full, rtol=0, atol=0)
    torch.testing.assert_close(restarted, full, rtol=0, atol=0)


class _FirstLayerResidual(torch.nn.Module):
    """A decoder block that also adds the first block's output: a cross-layer path (as in
    value-residual architectures) that a restart from a cached hidden state cannot reproduce."""

    def __init__(self, block: torch.nn.Module, index: int, shared: dict[str, Any]) -> None:
        super().__init__()
        self.block, self.index, self.shared = block, index, shared

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        out = self.block(hidden_states, *args, **kwargs)
        if self.index == 0:
            self.shared["first"] = out
            return out
        return out + 0.5 * self.shared.get("first", torch.zeros_like(out))


def test_architecture_that_cannot_restart_falls_back_to_full_passes(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    shared: dict[str, Any] = {}
    layers = model.model.layers
    for index in range(len(layers)):
        layers[index] = _FirstLayerResidual(layers[index], index, shared)
    model.register_forward_pre_hook(lambda module, args: shared.clear())  # state per call
    batch = _right_padded()
    cache = RestartCache(model, tmp_path, key="tiny-llama-first-layer-residual")
    with apply_edit(model, _edit(model, [2]), layers=[2]):
        full = _logits(model, batch)
        first = _logits(cache.from_layer(2), batch)
        with _count_calls(list(layers[:2])) as lower:
            second = _logits(cache.from_layer(2), batch)
    assert cache.restartable(2) is False
    assert lower[0] == 2  # a full pass, not a restart
    torch.testing.assert_close(first, full, rtol=0, atol=0)
    torch.testing.assert_close(second, full, rtol=0, atol=0)
    assert RestartCache(model, tmp_path, key="tiny-llama-first-layer-residual").restartable(2) is (
        False
    )


def test_hooks_below_the_restart_layer_are_refused(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    cache = RestartCache(model, tmp_path, key="tiny-llama")
    with apply_edit(model, _edit(model, [1, 2]), layers=[1, 2]):
        with pytest.raises(ModelError, match="restart at layer 2"):
            _logits(cache.from_layer(2), _right_padded())
        assert not list(tmp_path.rglob("*.safetensors"))


def test_model_like_view_and_checks(tmp_path: Path) -> None:
    loaded = tiny_loaded_model("gpt_neox")
    cache = RestartCache(loaded, tmp_path, key="tiny-gpt_neox")
    view = cache.from_layer(0)
    assert isinstance(view, RestartModel) and view.config is loaded.model.config
    assert next(view.parameters()) is next(loaded.model.parameters())
    assert list(view.children()) == []  # the view does not own the model
    batch = _right_padded()
    torch.testing.assert_close(_logits(view, batch), _logits(loaded.model, batch), rtol=0, atol=0)
    assert not list(tmp_path.rglob("*.safetensors"))  # layer 0: nothing to save
    with pytest.raises(ModelError, match="restart layer"):
        cache.from_layer(3)
    loaded.model.train()
    with pytest.raises(ModelError, match="eval"):
        _logits(cache.from_layer(1), batch)
