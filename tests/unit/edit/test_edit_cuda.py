"""The edit on a CUDA model: factors follow the model's device, half precision, fold, export.

Skipped without a GPU (CI has none); run on a machine with one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from synthetic_projections import in_memory_edit
from tiny_models import build_tiny_model

from sea_dist.edit import apply_edit, export_folded, fold_into

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

IDS = torch.tensor([[1, 60, 61, 62, 33, 90, 91, 7], [0, 0, 1, 72, 73, 74, 75, 76]])
MASK = (IDS != 0).long()


def _logits(model: torch.nn.Module, device: str) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS.to(device), attention_mask=MASK.to(device)).logits.float().cpu()


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
@pytest.mark.parametrize("skip_first_token", [False, True])
def test_cuda_hooks_match_cpu(arch: str, skip_first_token: bool) -> None:
    model, _ = build_tiny_model(arch)
    edit = in_memory_edit(model, site="residual", combine="l2")
    with apply_edit(model, edit, skip_first_token=skip_first_token):
        cpu = _logits(model, "cpu")
    model = model.to("cuda")
    plain = _logits(model, "cuda")
    with apply_edit(model, edit, skip_first_token=skip_first_token):
        gpu = _logits(model, "cuda")
        generated = model.generate(
            IDS.cuda(),
            attention_mask=MASK.cuda(),
            max_new_tokens=4,
            do_sample=False,
            pad_token_id=0,
        )
    assert generated.device.type == "cuda"
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)
    assert torch.equal(_logits(model, "cuda"), plain)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_half_precision_edit_runs_in_float32(dtype: torch.dtype) -> None:
    model, _ = build_tiny_model("llama")
    edit = in_memory_edit(model, site="mlp", combine="l2")
    with apply_edit(model, edit):
        reference = _logits(model, "cpu")
    model = model.to(device="cuda", dtype=dtype)
    with apply_edit(model, edit):
        half = _logits(model, "cuda")
    assert torch.isfinite(half).all()
    torch.testing.assert_close(half, reference, atol=0.1, rtol=0.1)


def test_cuda_fold_and_export(tmp_path: Path) -> None:
    model, tokenizer = build_tiny_model("llama")
    model = model.cuda()
    edit = in_memory_edit(model, site="mlp", combine="average")
    with apply_edit(model, edit):
        hooked = _logits(model, "cuda")
    with fold_into(model, edit) as handle:
        assert handle.linears[0].weight.device.type == "cuda"
        torch.testing.assert_close(_logits(model, "cuda"), hooked, atol=1e-5, rtol=1e-5)
    folder = export_folded(model, edit, tmp_path / "export", tokenizer=tokenizer)
    assert (folder / "model.safetensors").is_file()
