"""fold_into and export_folded: equal to the hooks, exact restore, plain-transformers load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from synthetic_projections import in_memory_edit
from tiny_models import build_tiny_model

from sea_dist.edit import FoldHandle, apply_edit, export_folded, fold_into
from sea_dist.errors import ArtifactError, ModelError

FOLD_CASES = [
    ("llama", "mlp"),
    ("gpt2", "mlp"),
    ("gpt_neox", "mlp"),
    ("qwen2", "mlp"),
    ("opt", "mlp"),
    ("llama", "attn"),
    ("gpt2", "attn"),
]
IDS = torch.tensor([[1, 60, 61, 62, 33, 90, 91, 7], [1, 70, 71, 72, 73, 74, 75, 76]])


def _logits(model: torch.nn.Module, ids: torch.Tensor = IDS) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize(("arch", "site"), FOLD_CASES)
@pytest.mark.parametrize("centred", [True, False])
def test_fold_equals_hooks_and_restores_bit_for_bit(arch: str, site: str, centred: bool) -> None:
    model, _ = build_tiny_model(arch)
    edit = in_memory_edit(model, site=site, combine="average", centred=centred, k_pos=7, k_neg=5)
    plain = _logits(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with apply_edit(model, edit):
        hooked = _logits(model)

    handle = fold_into(model, edit)
    assert isinstance(handle, FoldHandle) and handle.active
    assert all(not m._forward_hooks for m in model.modules())
    torch.testing.assert_close(_logits(model), hooked, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(hooked, plain, atol=1e-3)
    handle.remove()
    handle.remove()

    assert torch.equal(_logits(model), plain)
    after = model.state_dict()
    assert after.keys() == state.keys()  # a bias added by the fold is gone again
    assert all(torch.equal(after[k], state[k]) for k in state)


def test_fold_context_manager_and_layer_subset() -> None:
    model, _ = build_tiny_model("llama")
    edit = in_memory_edit(model, site="mlp", combine="average")
    plain = _logits(model)
    with apply_edit(model, edit, layers="last-1"):
        hooked = _logits(model)
    with fold_into(model, edit, layers="last-1") as handle:
        assert handle.layers == (2,)
        torch.testing.assert_close(_logits(model), hooked, atol=1e-5, rtol=1e-5)
    assert torch.equal(_logits(model), plain)


def test_fold_refuses_nonlinear_edits_and_residual_site() -> None:
    model, _ = build_tiny_model("llama")
    with pytest.raises(ArtifactError, match="combine: expected 'average'"):
        fold_into(model, in_memory_edit(model, site="mlp", combine="l2"))
    with pytest.raises(ArtifactError, match="feature_map"):
        fold_into(model, in_memory_edit(model, site="mlp", combine="average", feature_map="tanh"))
    with pytest.raises(ModelError, match="one linear layer"):
        fold_into(model, in_memory_edit(model, site="residual", combine="average"))
    assert model.model.layers[0].mlp.down_proj.bias is None


_PLAIN_LOADER = textwrap.dedent(
    """
    import json, sys
    sys.modules["sea_dist"] = None  # the exported folder must not need sea-dist
    try:
        import sea_dist  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("sea_dist importable")
    import torch
    from transformers import AutoModelForCausalLM
    folder, ids = sys.argv[1], json.loads(sys.argv[2])
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(torch.tensor(ids)).logits
        tokens = model.generate(torch.tensor(ids), max_new_tokens=5, do_sample=False,
                                pad_token_id=0)
    print(json.dumps({"logits": logits.tolist(), "tokens": tokens.tolist()}))
    """
)


def _load_in_plain_transformers(folder: Path, cwd: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", _PLAIN_LOADER, str(folder), json.dumps(IDS.tolist())],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gpt_neox"])
def test_export_folded_loads_without_sea_dist_and_matches_hooks(arch: str, tmp_path: Path) -> None:
    model, tokenizer = build_tiny_model(arch)
    edit = in_memory_edit(model, site="mlp", combine="average", centred=True, k_pos=6, k_neg=6)
    plain = _logits(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    config_before = model.config.to_dict()

    folder = export_folded(model, edit, tmp_path / "export", tokenizer=tokenizer)

    assert torch.equal(_logits(model), plain)  # the model in memory is unchanged
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in state)
    assert model.config.to_dict() == config_before
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    provenance = json.loads((folder / "sea-dist-edit.json").read_text())
    assert provenance["layers"] == [0, 1, 2]

    with apply_edit(model, edit):
        hooked = _logits(model)
        hooked_tokens = model.generate(IDS, max_new_tokens=5, do_sample=False, pad_token_id=0)
    out = _load_in_plain_transformers(folder, tmp_path)
    torch.testing.assert_close(torch.tensor(out["logits"]), hooked, atol=1e-5, rtol=1e-5)
    assert out["tokens"] == hooked_tokens.tolist()


def test_export_of_llama_sets_mlp_bias_flag(tmp_path: Path) -> None:
    model, tokenizer = build_tiny_model("llama")
    edit = in_memory_edit(model, site="mlp", combine="average", centred=True)
    folder = export_folded(model, edit, tmp_path / "export", verify=False)
    config = json.loads((folder / "config.json").read_text())
    assert config["mlp_bias"] is True
    assert model.config.mlp_bias is False


def test_export_refuses_centred_edit_where_transformers_has_no_bias(tmp_path: Path) -> None:
    model, _ = build_tiny_model("qwen2")
    plain = _logits(model)
    edit = in_memory_edit(model, site="mlp", combine="average", centred=True)
    with pytest.raises(ArtifactError, match="bias=False hard-coded") as error:
        export_folded(model, edit, tmp_path / "export")
    assert "\n" not in str(error.value)
    assert torch.equal(_logits(model), plain)
    assert all(block.mlp.down_proj.bias is None for block in model.model.layers)


def test_export_uncentred_edit_without_bias(tmp_path: Path) -> None:
    model, _ = build_tiny_model("qwen2")
    edit = in_memory_edit(model, site="mlp", combine="average", centred=False)
    folder = export_folded(model, edit, tmp_path / "export")  # verify=True compares logits
    assert (folder / "model.safetensors").is_file()
