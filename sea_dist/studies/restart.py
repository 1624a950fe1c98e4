"""Restart a forward pass at a decoder layer from its cached input, exactly.

A tuning study scores the same batches under many edit settings, and a setting that edits only
layers ``>= L`` leaves the input of decoder layer ``L`` unchanged: layers ``0..L-1`` compute the
same tensor for every setting. :class:`RestartCache` stores that tensor per batch on disk and
:meth:`RestartCache.from_layer` returns a model-like :class:`RestartModel` that, given a cached
batch, runs only layers ``L..`` + the final norm + the LM head.

How the restart stays exact: the top-level model is called as usual (same ``input_ids``,
``attention_mask``, ``position_ids``), so every top-level hook (e.g. the first-token mask of
``apply_edit(..., skip_first_token=True)``), the causal mask, the position embeddings and any
per-layer setting indexed by position (Gemma 2/3 and Qwen 2 sliding windows) are what a full pass
computes; only decoder blocks ``0..L-1`` are swapped, for the duration of the call, for a stand-in
that returns the cached input of block ``L``. What runs before the blocks (embedding lookup,
scaling, position embeddings) is cheap and its result is discarded. Hooks on blocks ``>= L`` and
their sub-modules fire as in a full pass.

The contract is checked, not assumed: the first time a layer is used, the restarted logits are
compared with the full pass's; the verdict is stored next to the files. An architecture whose
layers share state other than the hidden state within a call (cross-layer KV sharing, value
residuals) fails the check, and the cache then falls back to full forward passes for that layer.
(State a layer keeps in an attribute from one call to the next could pass the check, which
restarts right after a full pass of the same batch; no Hugging Face decoder we know does that.)
Blocks ``0..L-1`` and the input embeddings must carry no hooks: an edit there would make every
cached input stale, so the call is refused.

Files: ``folder/<fingerprint>/layer-<L>/<digest>.safetensors`` (one per batch, written to a
temporary sibling, fsynced and renamed, so an interrupted run leaves whole files only, and a new
run over the same folder reuses them), where the fingerprint hashes the caller's ``key`` (model
weights and revision), the dtype, the device type and the torch and transformers versions, and the
digest hashes the fingerprint, the layer and the batch's ids, mask and position ids. A file holds
one ``(batch, seq, d)`` tensor in the model's dtype; nothing is kept in memory between calls.

Not thread-safe: a restart swaps modules of the model during the call.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors import SafetensorError
from safetensors.torch import load, save

from sea_dist.errors import ModelError, expected_found
from sea_dist.layers import decoder_blocks
from sea_dist.outputs import write_atomic
from sea_dist.studies.restart_view import Bypass, RestartModel

_TENSOR = "hidden_states"


@dataclass
class RestartStats:
    """Counters of one :class:`RestartCache` object (not persisted).

    Attributes:
        full_forwards: calls that ran every decoder layer.
        restarts: calls that skipped layers (including verification runs).
        files_written: layer inputs saved.
        files_read: layer inputs loaded.
        verifications: exactness checks run.
    """

    full_forwards: int = 0
    restarts: int = 0
    files_written: int = 0
    files_read: int = 0
    verifications: int = 0


def _tensor_bytes(tensor: torch.Tensor | None) -> bytes:
    if tensor is None:
        return b"none"
    flat = tensor.detach().to("cpu", torch.int64).contiguous()
    return repr(tuple(flat.shape)).encode() + flat.numpy().tobytes()


class RestartCache:
    """Cached inputs of decoder layers, per batch, on disk; restarts a forward pass from them.

    Example::

        cache = RestartCache(model, Path("cache/restart"), key=f"{model_id}@{revision}")
        with apply_edit(model, edit, layers=[26, 27, 28, 29]):
            scores = pairs.score(cache.from_layer(26))

    Args:
        model: a Hugging Face causal LM (or a ``LoadedModel``), in eval mode.
        folder: where the files go (created when needed; shared between runs).
        key: fingerprint of the model's weights and revision, chosen by the caller: files made
            under another key are never read.
        capture_layers: layers whose input is saved too whenever a pass goes through them with
            no hook below them (e.g. every layer a study will restart from), so one pass fills
            the cache for all of them.
        tolerance: the largest ``max |restart - full|`` accepted by the exactness check, relative
            to ``max(1, max |full|)`` of the logits; 0 asks for bitwise equality.

    Raises:
        ModelError: the model has no decoder blocks we can find, or a capture layer is out of
            range.
    """

    def __init__(
        self,
        model: Any,
        folder: Path,
        key: str,
        *,
        capture_layers: Iterable[int] = (),
        tolerance: float = 1e-5,
    ) -> None:
        if not isinstance(model, torch.nn.Module) and isinstance(
            getattr(model, "model", None), torch.nn.Module
        ):
            model = model.model  # a LoadedModel
        self.model: torch.nn.Module = model
        self.folder = Path(folder)
        self.key = key
        self.tolerance = float(tolerance)
        self.stats = RestartStats()
        self._container = self._find_container()
        self._n_layers = len(self._container)
        self._names = {id(module): name for name, module in model.named_modules()}
        self.capture_layers = frozenset(self._checked_layer(c) for c in capture_layers)
        self._verdicts: dict[int, bool] = {}

        parameter = next(iter(model.parameters()), None)
        self._identity = {
            "key": key,
            "model": type(model).__name__,
            "layers": str(self._n_layers),
            "dtype": str(parameter.dtype) if parameter is not None else "none",
            "device": parameter.device.type if parameter is not None else "cpu",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }
        text = "\0".join(self._identity.values())
        self.fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]

    def _find_container(self) -> torch.nn.ModuleList:
        blocks = decoder_blocks(self.model)
        for module in self.model.modules():
            if isinstance(module, torch.nn.ModuleList) and len(module) == len(blocks):
                if all(a is b for a, b in zip(module, blocks)):
                    return module
        raise ModelError(
            expected_found(
                "decoder blocks", "a ModuleList", type(self.model).__name__, "use a HF causal LM"
            )
        )

    def _checked_layer(self, layer: int) -> int:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise ModelError(expected_found("restart layer", "an integer", layer))
        if not 0 <= layer < self._n_layers:
            raise ModelError(
                expected_found("restart layer", f"an index in 0..{self._n_layers - 1}", layer)
            )
        return layer

    def from_layer(self, layer: int) -> RestartModel:
        """A model-like object that restarts at decoder layer ``layer`` when it can.

        Edits may be installed only at layers ``>= layer``; layer 0 saves nothing and simply
        calls the model.
        """
        return RestartModel(self, self._checked_layer(layer))

    def layer_folder(self, layer: int) -> Path:
        """The folder holding layer ``layer``'s files under this cache's fingerprint."""
        return self.folder / self.fingerprint / f"layer-{layer:03d}"

    def path(
        self,
        layer: int,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> Path:
        """The file of layer ``layer``'s input for this batch (it may not exist yet)."""
        digest = hashlib.sha256(f"{self.fingerprint}\0{layer}\0".encode())
        for tensor in (input_ids, attention_mask, position_ids):
            digest.update(_tensor_bytes(tensor) + b"\0")
        return self.layer_folder(layer) / f"{digest.hexdigest()[:32]}.safetensors"

    def restartable(self, layer: int) -> bool | None:
        """The stored exactness verdict of layer ``layer``: None until it has been checked."""
        if layer not in self._verdicts:
            marker = self.layer_folder(layer) / "restart.json"
            try:
                self._verdicts[layer] = bool(json.loads(marker.read_text("utf-8"))["exact"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
        return self._verdicts[layer]

    def _record_verdict(self, layer: int, exact: bool, difference: float) -> None:
        record = {
            "layer": layer,
            "exact": exact,
            "max_abs_difference": difference if math.isfinite(difference) else None,
            "tolerance": self.tolerance,
            **{k: v for k, v in self._identity.items() if k != "key"},
        }
        write_atomic(self.layer_folder(layer) / "restart.json", json.dumps(record).encode())
        self._verdicts[layer] = exact

    def _hooked_below(self, layer: int) -> str | None:
        """Name of a module that runs before block ``layer`` and carries a forward hook."""
        embeddings = getattr(self.model, "get_input_embeddings", lambda: None)()
        modules = [m for block in self._container[:layer] for m in block.modules()]
        for module in [*modules, *([embeddings] if embeddings is not None else [])]:
            if module._forward_hooks or module._forward_pre_hooks:
                return self._names.get(id(module), type(module).__name__)
        return None

    def _device(self, layer: int, fallback: torch.Tensor) -> torch.device:
        """Where block ``layer`` computes (its input goes there)."""
        return next(iter(self._container[layer].parameters()), fallback).device

    def _load(self, path: Path, shape: tuple[int, int]) -> torch.Tensor | None:
        try:
            tensor = load(path.read_bytes())[_TENSOR]
        except FileNotFoundError:
            return None
        except (OSError, SafetensorError, KeyError):
            tensor = None
        if tensor is None or tensor.dim() != 3 or tuple(tensor.shape[:2]) != shape:
            with contextlib.suppress(OSError):
                path.unlink()  # unreadable: removed, so this pass computes and writes it again
            return None
        self.stats.files_read += 1
        return tensor

    def _call(
        self,
        start: int,
        hidden: torch.Tensor | None,
        capture: Iterable[int],
        inputs: dict[str, torch.Tensor | None],
    ) -> tuple[Any, dict[int, torch.Tensor]]:
        """Call the model with blocks ``0..start-1`` bypassed, saving inputs of ``capture``."""
        captured: dict[int, torch.Tensor] = {}

        def grab(layer: int) -> Any:
            def hook(
                module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> None:
                tensor = args[0] if args else kwargs.get("hidden_states")
                if isinstance(tensor, torch.Tensor):
                    captured[layer] = tensor.detach().clone()

            return hook

        handles = [
            # prepend: the raw input, before any other pre-hook of the block changes it
            self._container[c].register_forward_pre_hook(grab(c), with_kwargs=True, prepend=True)
            for c in capture
        ]
        originals = list(self._container[:start])
        try:
            if start > 0 and hidden is not None:
                bypass = Bypass(hidden)
                for index in range(start):
                    self._container[index] = bypass
            kwargs = {name: value for name, value in inputs.items() if value is not None}
            output = self.model(**kwargs, use_cache=False)
        finally:
            for index, block in enumerate(originals):
                self._container[index] = block
            for handle in handles:
                handle.remove()
        if start > 0:
            self.stats.restarts += 1
        else:
            self.stats.full_forwards += 1
        return output, captured

    def _verify(
        self,
        layer: int,
        hidden: torch.Tensor,
        inputs: dict[str, torch.Tensor | None],
        reference: torch.Tensor,
    ) -> None:
        """Restart at ``layer`` from ``hidden``, compare with ``reference`` logits, record it."""
        self.stats.verifications += 1
        try:
            restarted = self._call(layer, hidden, (), inputs)[0].logits
            if restarted.shape != reference.shape:
                difference = float("inf")
            else:
                delta = (restarted.double() - reference.double()).abs()
                difference = float(delta.max().item()) if delta.numel() else 0.0
        except Exception:  # a layout the stand-in does not fit is a failed check, not an error
            difference = float("inf")
        if difference != difference:  # NaN
            difference = float("inf")
        scale = max(1.0, float(reference.detach().abs().max().item()))
        self._record_verdict(layer, difference <= self.tolerance * scale, difference)

    def run(
        self,
        layer: int,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> Any:
        """The model's output for this batch, restarted at ``layer`` when cached and exact.

        Args:
            layer: the first decoder layer that runs; blocks ``0..layer-1`` must carry no hooks.
            input_ids: ``(batch, seq)`` int64 token ids.
            attention_mask: ``(batch, seq)`` 0/1 mask, or None.
            position_ids: ``(batch, seq)`` positions, or None (the model's default).

        Returns:
            The top-level model's output (``.logits``: ``(batch, seq, vocab)``), computed with
            ``use_cache=False``.

        Raises:
            ModelError: the model is in training mode, or a module below ``layer`` carries a
                forward hook (an edit there would make the cached input stale).
        """
        if self.model.training:
            raise ModelError(
                expected_found("model mode", "eval", "train", "call model.eval() first")
            )
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
        }
        hooked = self._hooked_below(layer) if layer > 0 else None
        if hooked is not None:
            raise ModelError(
                expected_found(
                    f"restart at layer {layer}",
                    f"no forward hooks on modules that run before decoder layer {layer}",
                    hooked,
                    f"apply edits only at layers >= {layer}, or restart from a lower layer",
                )
            )
        verdict = self.restartable(layer) if layer > 0 else None
        if verdict is False:
            return self._call(0, None, (), inputs)[0]
        shape = (int(input_ids.shape[0]), int(input_ids.shape[1]))
        paths = {
            c: self.path(c, input_ids, attention_mask, position_ids)
            for c in self.capture_layers | {layer}
        }
        # Restart from the highest layer <= `layer` whose input is cached and known to be exact
        # (not `layer` itself before its check: the check needs a pass that does not use it).
        start, hidden = 0, None
        for candidate in sorted(self.capture_layers | {layer}, reverse=True):
            if 0 < candidate <= layer and self.restartable(candidate) is True:
                loaded = self._load(paths[candidate], shape)
                if loaded is not None:
                    start, hidden = candidate, loaded.to(self._device(candidate, input_ids))
                    break
        if start == layer and layer > 0:
            return self._call(start, hidden, (), inputs)[0]
        own = self._load(paths[layer], shape) if layer > 0 and verdict is None else None
        # Inputs saved on the way: layers above `layer` only where nothing below them is hooked
        # (an unedited pass fills the cache for every capture layer).
        missing = [
            c
            for c in sorted(self.capture_layers | {layer})
            if c > start
            and self.restartable(c) is not False
            and not paths[c].exists()
            and (c <= layer or self._hooked_below(c) is None)
        ]
        output, captured = self._call(start, hidden, missing, inputs)
        for c, tensor in captured.items():
            write_atomic(paths[c], save({_TENSOR: tensor.to("cpu").contiguous()}))
            self.stats.files_written += 1
        if layer > 0 and verdict is None:
            own = captured.get(layer, own)
            if own is not None:
                self._verify(layer, own.to(self._device(layer, input_ids)), inputs, output.logits)
        return output
