"""Input fingerprint of a run: everything that determines the published projections.

A scheduled refit is skipped when its input fingerprint equals the one recorded (manifest key
``input_fingerprint``) in the latest published version of its target name. The fingerprint is a
sha256 over canonical JSON of:

- the model id, its resolved revision, ``gguf_file`` and ``dtype``;
- the demonstrations fingerprint (content of every row in order + prompt template identity);
- the ``collect``, ``store`` and ``fit`` sections, *minus* fields that only change where or how
  fast things run (paths, batch sizes, actor counts, schedulers). The exclusion list is explicit
  so a field added to those sections later counts by default: a new knob can cause an extra
  refit, never a wrongly skipped one.

:func:`input_fingerprint` is a pure function of ``(config, model revision, demonstrations
fingerprint)``; publish calls it with the values recorded in the activation store.
:func:`compute_input_fingerprint` resolves those two values from a config without loading model
weights (the scheduler's view), with the same rules as :func:`sea_dist.models.load_model`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants, try_to_load_from_cache

from sea_dist.config import DEMO_MODEL_ID, ModelConfig, SeaConfig, config_to_dict
from sea_dist.data import demonstrations_fingerprint, load_demonstrations, make_template
from sea_dist.errors import ModelError, expected_found
from sea_dist.format.hashing import sha256_files
from sea_dist.provision import DEMO_PACKAGE, cache_root, ensure_demo_model

FINGERPRINT_VERSION = "sea-dist/input/v1"
DEMO_REVISION = DEMO_PACKAGE
"""Revision :func:`sea_dist.models.load_model` reports for the demo model (its PyPI package)."""

# Fields that do not change the fitted projections, per section.
EXCLUDED_FIELDS: dict[str, frozenset[str]] = {
    "model": frozenset({"device", "cache_dir", "revision"}),  # revision: resolved one is used
    "collect": frozenset(
        {
            "batch_size",
            "rows_per_shard",
            "num_actors",
            "num_gpus_per_actor",
            "max_in_flight",
            "max_retries",
            "ray_address",
        }
    ),
    "store": frozenset({"url", "codec", "overwrite"}),
    "fit": frozenset({"out", "scheduler", "chunk_rows"}),
}
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def fingerprint_inputs(
    config: SeaConfig, model_revision: str, demonstrations_fingerprint: str
) -> dict[str, Any]:
    """The canonical document that :func:`input_fingerprint` hashes (for display and diffs)."""
    sections = config_to_dict(config)
    document: dict[str, Any] = {
        "version": FINGERPRINT_VERSION,
        "model_revision": model_revision,
        "demonstrations_fingerprint": demonstrations_fingerprint,
    }
    for section in ("model", "collect", "store", "fit"):
        document[section] = {
            key: value
            for key, value in sections[section].items()
            if key not in EXCLUDED_FIELDS[section]
        }
    return document


def input_fingerprint(
    config: SeaConfig, model_revision: str, demonstrations_fingerprint: str
) -> str:
    """sha256 hex digest of a run's inputs.

    Args:
        config: the run's config (model, collect, store and fit sections are used).
        model_revision: :attr:`sea_dist.models.LoadedModel.revision` (or the store attribute
            ``model_revision``).
        demonstrations_fingerprint: the store attribute of the same name.

    Returns:
        64 lowercase hex characters, equal across processes and machines for equal inputs.
    """
    document = fingerprint_inputs(config, model_revision, demonstrations_fingerprint)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _hub_revision(model_id: str, revision: str | None) -> str:
    """Commit hash of a hub model: pinned, from the local hub cache, or asked from the hub."""
    wanted = revision or "main"
    if _COMMIT_RE.match(wanted):
        return wanted

    ref = Path(constants.HF_HUB_CACHE) / f"models--{model_id.replace('/', '--')}" / "refs" / wanted
    if ref.is_file():
        return ref.read_text(encoding="utf-8").strip()
    if constants.HF_HUB_OFFLINE:  # the hub's own parsing of $HF_HUB_OFFLINE
        raise ModelError(
            expected_found(
                "model.revision",
                "a commit hash or a cached hub model",
                wanted,
                f"pin model.revision to a 40-hex commit of {model_id!r} (offline)",
            )
        )
    try:
        sha = HfApi().model_info(model_id, revision=wanted).sha
    except Exception as error:  # network, auth and missing repos all mean "cannot resolve"
        raise ModelError(
            expected_found(
                "model.revision",
                "a revision the hub can resolve",
                wanted,
                f"pin model.revision to a commit of {model_id!r} ({error})",
            )
        ) from error
    if not sha:
        raise ModelError(expected_found("model.revision", "a commit hash", None))
    return str(sha)


def resolve_model_revision(config: ModelConfig) -> str:
    """The revision :func:`sea_dist.models.load_model` will report, without loading weights.

    Demo model: its package pin. Local folder: ``sha256:`` + 16 hex of its safetensors files.
    GGUF file: ``sha256:`` + 16 hex of the file. Hub id: the commit hash (a pinned 40-hex
    revision, the local hub cache, or one metadata request to the hub).

    Raises:
        ModelError: the model cannot be found, or a hub revision cannot be resolved offline.
    """
    if config.id == DEMO_MODEL_ID:
        return DEMO_REVISION
    path = Path(config.id).expanduser()
    if path.is_dir() and config.gguf_file:
        path = path / config.gguf_file
    if path.is_file():
        return "sha256:" + sha256_files([path])[:16]
    if path.is_dir():
        weights = sorted(path.glob("*.safetensors"))
        if not weights:
            raise ModelError(
                expected_found(
                    "model folder",
                    "*.safetensors weights",
                    str(path),
                    "re-save the model with save_pretrained(safe_serialization=True)",
                )
            )
        return "sha256:" + sha256_files(weights)[:16]
    if config.id.startswith((".", "/", "~")) or config.id.endswith(".gguf"):
        raise ModelError(
            expected_found(
                "model.id", "an existing folder or .gguf file", config.id, "check the path"
            )
        )
    if config.gguf_file:
        cached = try_to_load_from_cache(config.id, config.gguf_file, revision=config.revision)
        if not isinstance(cached, str):  # never download gigabytes just to fingerprint them
            raise ModelError(
                expected_found(
                    "model.gguf_file",
                    "a GGUF file in the local hub cache",
                    config.gguf_file,
                    "run the job once, or point model.id at the file",
                )
            )
        return "sha256:" + sha256_files([Path(cached)])[:16]
    return _hub_revision(config.id, config.revision)


def _tokenizer_for(config: ModelConfig) -> Any:
    """A tokenizer for chat templates (only the ``chat`` template needs one)."""
    from transformers import AutoTokenizer  # the scheduler loads transformers only for this

    if config.id == DEMO_MODEL_ID:
        return AutoTokenizer.from_pretrained(str(ensure_demo_model(cache_root(config))))
    path = Path(config.id).expanduser()
    if path.is_dir() and not config.gguf_file:
        return AutoTokenizer.from_pretrained(str(path))
    if path.is_file() or config.gguf_file:
        gguf = path if path.is_file() else path / str(config.gguf_file)
        return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return AutoTokenizer.from_pretrained(config.id, revision=config.revision)


def compute_demonstrations_fingerprint(config: SeaConfig) -> str:
    """Load the demonstrations ``config.data`` names and fingerprint them with their template.

    Only the ``chat`` template loads a tokenizer (never model weights).
    """
    tokenizer = _tokenizer_for(config.model) if config.data.template == "chat" else None
    template = make_template(config.data, tokenizer)
    return demonstrations_fingerprint(load_demonstrations(config.data), template)


def compute_input_fingerprint(config: SeaConfig) -> str:
    """:func:`input_fingerprint` with the revision and demonstrations resolved from ``config``.

    Raises:
        ModelError: the model revision cannot be resolved.
        DataError: the demonstrations cannot be loaded.
    """
    return input_fingerprint(
        config, resolve_model_revision(config.model), compute_demonstrations_fingerprint(config)
    )
