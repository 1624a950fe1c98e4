"""Write a standard Hugging Face checkpoint with an ``average`` SEA edit baked into its weights.

The folder is what ``save_pretrained`` writes (config, safetensors weights, generation config,
and the tokenizer when given) plus ``sea-dist-edit.json`` (provenance, ignored by transformers).
It loads and generates with plain transformers, no sea-dist needed: the route to any serving
engine (vLLM, TGI, llama.cpp after conversion to GGUF).

A centred fold needs a bias on the output projection (``A b + (I - A) m``). Where the linear has
none, transformers only loads a bias when a config flag creates it; per architecture:

- GPT-2 (``c_proj``), GPT-NeoX (``dense_4h_to_h``), OPT (``fc2``, ``enable_bias`` default on):
  the bias exists already.
- Llama: ``mlp_bias`` (also creates ``gate_proj`` / ``up_proj`` biases, exported as zeros) for
  ``mlp``; ``attention_bias`` (zero q/k/v biases) for ``attn``. GPT-NeoX ``attn``:
  ``attention_bias``; OPT: ``enable_bias``.
- Mistral, Qwen2, Qwen3, Gemma 1/2/3, Phi-3 hard-code ``bias=False``: a centred edit cannot be
  exported for them and is refused with a clear error (an uncentred ``average`` edit can:
  ``A b + (I - A) m`` is then zero), the hooks still apply it.

Every export is checked by loading the folder back with transformers: no missing or unexpected
weights, and (``verify=True``) its logits match the hooked model's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch

from sea_dist.config import LayerSpec
from sea_dist.edit.compat import unwrap_model
from sea_dist.edit.fold import fold_into, is_conv1d
from sea_dist.edit.hooks import apply_edit
from sea_dist.edit.loader import load_edit
from sea_dist.edit.projections import SeaEdit
from sea_dist.errors import ArtifactError, expected_found

PROVENANCE_FILE = "sea-dist-edit.json"

BIAS_FLAGS: dict[tuple[str, str], str] = {
    ("llama", "mlp"): "mlp_bias",
    ("llama", "attn"): "attention_bias",
    ("gpt_neox", "attn"): "attention_bias",
    ("opt", "mlp"): "enable_bias",
    ("opt", "attn"): "enable_bias",
}
"""Config flag that makes transformers create (and load) the output projection's bias."""


def _expected_keys(model: torch.nn.Module, config: Any) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes of ``type(model)`` built from ``config`` (on meta: no memory)."""
    with torch.device("meta"):
        reference = type(model)(copy.deepcopy(config))
    return {key: tuple(value.shape) for key, value in reference.state_dict().items()}


def _add_zero_biases(model: torch.nn.Module, config: Any) -> list[torch.nn.Module]:
    """Give every linear that ``config`` expects a bias for, and has none, a zero bias."""
    expected = _expected_keys(model, config)
    have = model.state_dict()
    missing = sorted(set(expected) - set(have))
    unexpected = sorted(set(have) - set(expected))
    if unexpected or any(not key.endswith(".bias") for key in missing):
        raise ArtifactError(
            expected_found(
                "export_folded",
                "only missing biases after setting the config flag",
                (missing + unexpected)[:4],
                "report this architecture to sea-dist",
            )
        )
    added = []
    for key in missing:
        module = model.get_submodule(key.rsplit(".", 1)[0])
        weight = cast(torch.Tensor, module.weight)
        out_features = weight.shape[1] if is_conv1d(module) else weight.shape[0]
        if expected[key] != (out_features,):
            raise ArtifactError(
                expected_found(f"export_folded: {key}", f"({out_features},)", expected[key])
            )
        zero = torch.nn.Parameter(
            torch.zeros(out_features, dtype=weight.dtype, device=weight.device), requires_grad=False
        )
        module.register_parameter("bias", zero)
        added.append(module)
    return added


def _probe_ids(config: Any, device: torch.device) -> torch.Tensor:
    vocab = int(getattr(config, "vocab_size", 0) or 0) or 2
    return (torch.arange(3, 3 + 2 * 11, 2, device=device) % vocab)[None]


def _verify(
    folder: Path,
    model: torch.nn.Module,
    sea: SeaEdit,
    layers: tuple[int, ...],
    reference: torch.Tensor,
) -> None:
    """Load ``folder`` with plain transformers; compare its logits with the hooked model's."""
    from transformers import AutoModelForCausalLM  # importing sea_dist.edit loads torch only

    result: Any = AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=next(model.parameters()).dtype, output_loading_info=True
    )
    loaded, info = result
    problems = {k: v for k, v in info.items() if v and k != "error_msgs"} | (
        {"error_msgs": info["error_msgs"]} if info.get("error_msgs") else {}
    )
    if problems:
        raise ArtifactError(
            expected_found(
                f"export_folded: {folder}",
                "a checkpoint that transformers loads completely",
                problems,
            )
        )
    loaded.eval()
    with torch.no_grad():
        logits = loaded(reference.cpu()).logits.float()
        with apply_edit(
            model, sea, layers=list(layers), alpha=1.0, positions="all", allow_model_mismatch=True
        ):
            hooked = model(reference).logits.float().cpu()
    tolerance = (1e-4 if loaded.dtype == torch.float32 else 5e-2) * max(
        1.0, float(hooked.abs().max())
    )
    error = float((logits - hooked).abs().max())
    if not error <= tolerance:
        raise ArtifactError(
            expected_found(
                f"export_folded: {folder} logits",
                f"the hooked model's within {tolerance:.2g}",
                f"max difference {error:.3g}",
            )
        )


def export_folded(
    model: Any,
    edit: SeaEdit | str | Path,
    out_dir: str | Path,
    tokenizer: Any = None,
    layers: LayerSpec | Sequence[int] = "all",
    allow_model_mismatch: bool = False,
    verify: bool = True,
    registry: str | None = None,
) -> Path:
    """Save ``model`` with an ``average`` edit folded in, as a plain Hugging Face checkpoint.

    The model in memory is left exactly as it was (the fold is undone after saving).

    Args:
        model: a Hugging Face causal LM (``PreTrainedModel``) or a ``LoadedModel`` (whose
            tokenizer is saved too unless ``tokenizer`` is given).
        edit: loaded projections, a folder or a registry reference; ``combine: average``,
            ``feature_map: linear``, site ``mlp`` (or ``attn``).
        out_dir: folder to write (created; existing files of the same name are overwritten).
        tokenizer: saved alongside when given.
        layers: which fitted layers to fold (as in ``apply_edit``).
        allow_model_mismatch: accept another model id / architecture of the same shape.
        verify: load the folder back and compare logits on a short probe with the hooked model.
        registry: registry location when ``edit`` is a reference.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ArtifactError: the edit cannot be folded or exported for this architecture (see module
            doc), does not match the model, or the written checkpoint does not load / match.
    """
    module, _ = unwrap_model(model)
    if tokenizer is None and not isinstance(model, torch.nn.Module):
        tokenizer = getattr(model, "tokenizer", None)
    sea = edit if isinstance(edit, SeaEdit) else load_edit(edit, registry=registry)
    recipe = sea.recipe
    if recipe is not None and (recipe.alpha != 1.0 or recipe.positions != "all"):
        # weights cannot tell prompt from answer tokens, and the fold bakes the full edit
        raise ArtifactError(
            expected_found(
                f"export_folded: {sea.source or 'edit'} recipe",
                "alpha 1 and positions 'all' (what folding into weights can express)",
                f"alpha {recipe.alpha}, positions {recipe.positions!r}",
                "apply this edit with hooks (apply_edit) instead",
            )
        )
    out = Path(out_dir)
    config: Any = getattr(module, "config", None)
    model_type = str(getattr(config, "model_type", ""))
    probe = _probe_ids(config, next(module.parameters()).device)
    handle = fold_into(model, sea, layers=layers, allow_model_mismatch=allow_model_mismatch)
    flag = BIAS_FLAGS.get((model_type, sea.site)) if sea.site_template is None else None
    # save_pretrained writes (and edits: ``architectures``) model.config; a copy takes the bias
    # flag and those edits, so the caller's config object is never changed.
    saved_config = copy.deepcopy(config)
    added: list[torch.nn.Module] = []
    try:
        module.config = saved_config
        if handle.added_biases:
            if flag is None:
                raise ArtifactError(
                    expected_found(
                        f"export_folded: {model_type} {sea.site} output projection",
                        "a bias transformers can load (the centred fold needs A b + (I - A) m)",
                        "bias=False hard-coded in transformers",
                        "fit with fit.centre: false for an exportable edit, or apply it with hooks",
                    )
                )
            setattr(saved_config, flag, True)
            added = _add_zero_biases(module, saved_config)
        out.mkdir(parents=True, exist_ok=True)
        module.save_pretrained(str(out))  # type: ignore[operator]
        if tokenizer is not None:
            tokenizer.save_pretrained(str(out))
        provenance = {
            "source": sea.source,
            "model_id": sea.model_id,
            "site": sea.site,
            "layers": list(handle.layers),
            "combine": sea.combine,
            "centred": sea.centred,
            "bias_flag": flag if handle.added_biases else None,
        }
        (out / PROVENANCE_FILE).write_text(
            json.dumps(provenance, indent=2) + "\n", encoding="utf-8"
        )
    finally:
        for linear in added:
            linear.register_parameter("bias", None)
        module.config = config
        handle.remove()
    if verify:
        _verify(out, module, sea, handle.layers, probe)
    return out
