"""Find decoder blocks and edit sites of Hugging Face causal LMs; read and replace hook outputs.

Collection (forward hooks that read) and editing (forward hooks that write) share this module, so
the fit and the edit always see the same tensor at the same site.

Sites (``collect.site``):

- ``residual``: the output hidden state of decoder block ``l`` (what block ``l + 1`` reads).
- ``mlp``: the output of the block's MLP sub-module, before it is added to the residual stream.
  Gemma 2/3 apply ``post_feedforward_layernorm`` after it; OPT has no MLP module, so the site is
  its second linear layer ``fc2``, whose output is flattened to ``(batch * seq, d)`` (pass
  ``batch_shape`` to :func:`output_tensor`).
- ``attn``: the first output of the block's attention sub-module (the attention output after its
  output projection), before the residual add (and before Gemma 2/3's ``post_attention_layernorm``).

Any other layout is reached with a module path template such as ``model.layers.{layer}.mlp``
(``collect.site_template``). Only torch and transformers are imported here: the edit path must run
in a serving image without ray, dask or zarr.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from sea_dist.config import LAYER_SPEC_RE, SITES, LayerSpec
from sea_dist.errors import ConfigError, ModelError, expected_found

# Where the decoder blocks live, relative to the top-level model, for the wrappers we know:
# *ForCausalLM (model.layers), Gemma3ForConditionalGeneration (model.language_model.layers),
# GPT-2 (transformer.h), GPT-NeoX (gpt_neox.layers), OPT (model.decoder.layers), and the bare
# base models (layers, h, decoder.layers).
_BLOCK_PATHS = (
    "model.layers",
    "model.language_model.layers",
    "language_model.model.layers",
    "language_model.layers",
    "model.decoder.layers",
    "transformer.h",
    "transformer.layers",
    "gpt_neox.layers",
    "layers",
    "h",
    "decoder.layers",
)

# Sub-module attribute names inside a decoder block, tried in order.
_SITE_ATTRS: dict[str, tuple[str, ...]] = {
    "mlp": ("mlp", "feed_forward", "ffn", "fc2"),
    "attn": ("self_attn", "attn", "attention", "self_attention"),
}

_OVERRIDE_HINT = (
    "set collect.site_template to a module path with '{layer}' (e.g. 'model.layers.{layer}.mlp')"
)


def _model_type(model: torch.nn.Module) -> str:
    config = getattr(model, "config", None)
    return str(getattr(config, "model_type", type(model).__name__))


def decoder_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Return the decoder blocks of ``model`` in order (block ``l`` is layer ``l``).

    Args:
        model: a Hugging Face causal LM (``*ForCausalLM``) or its base model.

    Known containers are tried first (``model.layers``, ``transformer.h``, ``gpt_neox.layers``,
    ``model.decoder.layers``, ...); otherwise the single ``ModuleList`` whose length is
    ``config.num_hidden_layers`` is taken.

    Raises:
        ModelError: no block container was found; the message names the model type and the
            ``collect.site_template`` override.
    """
    for path in _BLOCK_PATHS:
        try:
            blocks = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(blocks, torch.nn.ModuleList) and len(blocks) > 0:
            return list(blocks)
    # Unknown wrapper: the one ModuleList as long as the configured number of layers.
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    expected = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    if isinstance(expected, int) and expected > 0:
        candidates = [
            module
            for module in model.modules()
            if isinstance(module, torch.nn.ModuleList) and len(module) == expected
        ]
        if len(candidates) == 1:
            return list(candidates[0])
    raise ModelError(
        expected_found(
            "architecture",
            f"decoder blocks at one of {', '.join(_BLOCK_PATHS)}",
            _model_type(model),
            _OVERRIDE_HINT,
        )
    )


def num_layers(model: torch.nn.Module) -> int:
    """Number of decoder blocks of ``model``."""
    return len(decoder_blocks(model))


def hidden_size(model: torch.nn.Module) -> int:
    """Width ``d`` of the residual stream (the last dimension of every site's tensor).

    Raises:
        ModelError: the model has no config with ``hidden_size``, ``n_embd`` or ``d_model``.
    """
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        # Multimodal wrappers (e.g. Gemma 3) keep the language model's width in text_config.
        config = config.get_text_config()
    for name in ("hidden_size", "n_embd", "d_model"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ModelError(
        expected_found(
            "model config",
            "hidden_size, n_embd or d_model",
            _model_type(model),
            "pass a Hugging Face model with a config",
        )
    )


def resolve_layers(spec: LayerSpec, n_layers: int) -> tuple[int, ...]:
    """Turn a layer spec into sorted, distinct 0-based decoder layer indices.

    Args:
        spec: ``"all"``, ``"last-L"`` / ``"first-L"`` (L layers), ``"last-P%"`` / ``"first-P%"``
            (P an integer in 1..100: ``P / 100 * n_layers`` layers rounded half up, at least 1),
            or an explicit sequence of indices.
        n_layers: number of decoder blocks of the model (or of whatever is being chosen from,
            e.g. the fitted layers in :func:`sea_dist.edit.select_layers`).

    Returns:
        Ascending layer indices, e.g. ``resolve_layers("last-2", 30) == (28, 29)`` and
        ``resolve_layers("last-66%", 32) == tuple(range(11, 32))`` (21 layers).

    Raises:
        ConfigError: the spec is malformed or asks for layers outside ``0..n_layers-1``.
    """
    valid = f"layers in 0..{n_layers - 1} (the model has {n_layers})"
    if isinstance(spec, str):
        if not LAYER_SPEC_RE.match(spec):
            raise ConfigError(
                expected_found(
                    "layers",
                    "'all', 'last-L', 'first-L', 'last-P%', 'first-P%' or a list of indices",
                    spec,
                )
            )
        if spec == "all":
            return tuple(range(n_layers))
        kind, count_text = spec.split("-")
        if count_text.endswith("%"):
            # integer arithmetic, rounded half up: no float surprises (0.66 * 50 = 33.0000...4)
            count = max(1, (int(count_text[:-1]) * n_layers + 50) // 100)
        else:
            count = int(count_text)
        if count > n_layers:
            raise ConfigError(
                expected_found("layers", f"at most {n_layers} {kind} layers ({valid})", spec)
            )
        return tuple(range(count)) if kind == "first" else tuple(range(n_layers - count, n_layers))
    indices = list(spec)
    bad = [i for i in indices if not isinstance(i, int) or isinstance(i, bool)]
    if bad or not indices:
        raise ConfigError(expected_found("layers", "a non-empty list of integers", list(spec)))
    outside = [i for i in indices if not 0 <= i < n_layers]
    if outside:
        raise ConfigError(
            expected_found("layers", valid, outside, "use indices 0-based from the first block")
        )
    if len(set(indices)) != len(indices):
        raise ConfigError(expected_found("layers", "distinct indices", indices))
    return tuple(sorted(indices))


def _from_template(model: torch.nn.Module, layer: int, template: str) -> torch.nn.Module:
    if "{layer}" not in template:
        raise ConfigError(
            expected_found("site_template", "a module path containing '{layer}'", template)
        )
    # str.replace, not str.format: a module path never needs other braces, and a stray one
    # would otherwise raise a KeyError far from the user's config.
    path = template.replace("{layer}", str(layer))
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise ModelError(
            expected_found(
                "site_template",
                f"a module path of this {_model_type(model)} model",
                path,
                "list valid paths with [n for n, _ in model.named_modules()]",
            )
        ) from None


def site_module(
    model: torch.nn.Module, layer: int, site: str, template: str | None = None
) -> torch.nn.Module:
    """Return the module whose forward output is ``site`` at decoder layer ``layer``.

    Args:
        model: a Hugging Face causal LM.
        layer: 0-based decoder layer index.
        site: ``residual``, ``mlp`` or ``attn`` (ignored when ``template`` is given).
        template: module path with ``{layer}`` relative to ``model``, overriding ``site``.

    Raises:
        ConfigError: unknown site or layer out of range.
        ModelError: the architecture's layout is not known; the message names the model type
            and the ``collect.site_template`` override.
    """
    if template is not None:
        return _from_template(model, layer, template)
    if site not in SITES:
        raise ConfigError(
            expected_found("site", f"one of {', '.join(SITES)}", site, "or set site_template")
        )
    blocks = decoder_blocks(model)
    if not 0 <= layer < len(blocks):
        raise ConfigError(expected_found("layer", f"an index in 0..{len(blocks) - 1}", layer))
    block = blocks[layer]
    if site == "residual":
        return block
    for name in _SITE_ATTRS[site]:
        module = getattr(block, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise ModelError(
        expected_found(
            f"{site} site of a {_model_type(model)} block",
            f"a sub-module named one of {', '.join(_SITE_ATTRS[site])}",
            type(block).__name__,
            _OVERRIDE_HINT,
        )
    )


def site_modules(
    model: torch.nn.Module, layers: Sequence[int], site: str, template: str | None = None
) -> dict[int, torch.nn.Module]:
    """Map each layer index in ``layers`` to its site module (see :func:`site_module`)."""
    return {layer: site_module(model, layer, site, template) for layer in layers}


def _first_tensor(output: Any) -> tuple[torch.Tensor, str]:
    """The hidden state in ``output`` and how it was found (tensor / sequence / mapping)."""
    if isinstance(output, torch.Tensor):
        return output, "tensor"
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0], "sequence"
    # ModelOutput is an OrderedDict whose first set field is the hidden state.
    if isinstance(output, dict) and output:
        first = next(iter(output.values()))
        if isinstance(first, torch.Tensor):
            return first, "mapping"
    raise ModelError(
        expected_found(
            "site output",
            "a tensor, or a tuple / ModelOutput whose first element is a tensor",
            type(output).__name__,
            "choose another module with collect.site_template",
        )
    )


def output_tensor(output: Any, batch_shape: Sequence[int] | None = None) -> torch.Tensor:
    """The hidden state inside a module's forward output (what a forward hook receives).

    In transformers 5.x decoder blocks and MLPs return a plain tensor and attention modules a
    tuple ``(attn_output, attn_weights)``; older versions return tuples from blocks too.

    Args:
        output: a tensor, a tuple/list whose first element is the tensor, or a ModelOutput.
        batch_shape: ``(batch, seq)``; when given and the tensor is flattened to
            ``(batch * seq, d)`` (OPT's ``fc2``), it is viewed as ``(batch, seq, d)``.

    Returns:
        The hidden state, float tensor of shape ``(batch, seq, d)`` (a view, not a copy; clone it
        before keeping it past the forward pass if the model edits it in place).
    """
    tensor, _ = _first_tensor(output)
    if batch_shape is not None and tensor.dim() == 2:
        batch, seq = (int(n) for n in batch_shape)
        if tensor.shape[0] != batch * seq:
            raise ModelError(
                expected_found(
                    "flattened site output",
                    f"{batch * seq} rows for batch_shape {batch}x{seq}",
                    tuple(tensor.shape),
                )
            )
        tensor = tensor.view(batch, seq, tensor.shape[-1])
    return tensor


def replace_output(output: Any, new: torch.Tensor) -> Any:
    """Return ``output`` with its hidden state replaced by ``new``, keeping the structure.

    A forward hook that edits returns this. ``new`` is reshaped to the original hidden state's
    shape, so an edit computed on the ``(batch, seq, d)`` view of a flattened output fits back.

    Args:
        output: the module's forward output, as given to the hook.
        new: the edited hidden state, same number of elements as the original.
    """
    old, kind = _first_tensor(output)
    if new.shape != old.shape:
        new = new.reshape(old.shape)
    if kind == "tensor":
        return new
    if kind == "sequence":
        rest = list(output[1:])
        if isinstance(output, list):
            return [new, *rest]
        if hasattr(output, "_fields"):  # namedtuple: rebuild by position
            return type(output)(new, *rest)
        return type(output)((new, *rest)) if type(output) is not tuple else (new, *rest)
    # ModelOutput / dict: a shallow copy with the first field replaced keeps the caller's object
    # untouched (other hooks may still hold it).
    key = next(iter(output))
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return dataclasses.replace(output, **{key: new})
    replaced = copy.copy(output)
    replaced[key] = new
    return replaced
