"""Verified artifacts in memory: decoding, loading a folder over fsspec, writing a local copy.

:func:`load_artifact_folder` reads an artifact folder (local or fsspec URL, e.g. a downloaded copy
or ``<registry>/<name>/versions/<v>``); the registries decode the bytes they fetched with
:func:`artifact_from_bytes`. The verification itself (layout, no pickle, sha256 against the
manifest, shapes, values, and the manifest against ``manifest.sha256`` or the registry marker)
is :mod:`sea_dist.format.artifact`; this module reads the bytes through fsspec, turns the
tensors into numpy arrays or torch tensors, and writes downloaded copies. Loading by registry
reference is :func:`sea_dist.registry.access.load_artifact`.

Needs only numpy, safetensors, fsspec and the standard library (torch only if
``framework="torch"``); it imports no registry.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fsspec.core
import numpy as np

from sea_dist.errors import RegistryError, expected_found
from sea_dist.format.anchors import COMPLETE_DIR, DIGEST_FILE, digest_file_bytes
from sea_dist.format.artifact import ArtifactContent, read_artifact_folder, verify_artifact
from sea_dist.format.files import MANIFEST_FILE, PROJECTIONS_FILE
from sea_dist.format.manifest import Manifest

Framework = Literal["numpy", "torch"]


@dataclass(frozen=True)
class LayerProjections:
    """The low-rank factors of one decoder layer (numpy arrays or torch tensors).

    Attributes:
        layer: decoder layer index in the model.
        U_pos: (d, k_pos) float32, kept positive-covarying directions.
        U_neg: (d, k_neg) float32, removed negative-covarying directions.
        S_pos: (m_pos,) float64 singular values of Omega+ (diagnostic spectrum).
        S_neg: (m_neg,) float64 singular values of Omega-.
        mean: (d,) float32 neutral feature mean, or None when the fit was not centred.
    """

    layer: int
    U_pos: Any
    U_neg: Any
    S_pos: Any
    S_neg: Any
    mean: Any | None


@dataclass(frozen=True)
class Artifact:
    """A verified artifact: its manifest and per-layer projections."""

    manifest: Manifest
    layers: dict[int, LayerProjections]
    source: str
    """Where it was loaded from (folder URL)."""

    @property
    def ref(self) -> str:
        return self.manifest.ref


def artifact_from_content(content: ArtifactContent, framework: Framework = "numpy") -> Artifact:
    """An :class:`Artifact` of verified content, its tensors as numpy arrays or torch tensors."""
    arrays = content.arrays
    convert: Any = _to_torch if framework == "torch" else (lambda a: a)
    layers = {}
    for summary in content.manifest.per_layer:
        L = summary.layer
        mean = arrays.get(f"layers.{L}.mean")
        layers[L] = LayerProjections(
            layer=L,
            U_pos=convert(arrays[f"layers.{L}.U_pos"]),
            U_neg=convert(arrays[f"layers.{L}.U_neg"]),
            S_pos=convert(arrays[f"layers.{L}.S_pos"]),
            S_neg=convert(arrays[f"layers.{L}.S_neg"]),
            mean=convert(mean) if mean is not None else None,
        )
    return Artifact(manifest=content.manifest, layers=layers, source=content.source)


def artifact_from_bytes(
    manifest_raw: bytes, projections: bytes, source: str, framework: Framework = "numpy"
) -> Artifact:
    """Verify and decode an artifact held in memory (``format.artifact.verify_artifact``)."""
    return artifact_from_content(verify_artifact(manifest_raw, projections, source), framework)


def _to_torch(array: np.ndarray) -> Any:
    import torch  # only for framework="torch": loading for numpy needs no torch

    return torch.from_numpy(np.array(array, copy=True))


def load_artifact_folder(
    url: str,
    framework: Framework = "numpy",
    storage_options: Mapping[str, Any] | None = None,
) -> Artifact:
    """Load and verify the artifact folder at ``url`` (local folder or fsspec URL)."""
    fs, root = fsspec.core.url_to_fs(str(url), **dict(storage_options or {}))

    def read(path: str) -> bytes | None:
        try:
            return bytes(fs.cat_file(path))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    content = read_artifact_folder(read, str(root).rstrip("/"), str(url).rstrip("/"))
    return artifact_from_content(content, framework)


COPY_FILES = (PROJECTIONS_FILE, MANIFEST_FILE, DIGEST_FILE)
"""What a downloaded copy holds (and all that ``--overwrite`` may replace)."""
_TEMP_COPY_RE = re.compile(
    r"^\.(?:" + "|".join(re.escape(n) for n in COPY_FILES) + r")\.[0-9a-f]{32}$"
)


def check_download_dest(dest: str | os.PathLike[str], overwrite: bool = False) -> None:
    """Refuse a download destination that holds anything, unless it is an earlier download.

    A new folder, or an empty one, is always fine. With ``overwrite``, a folder that holds
    nothing but the files of a download (:data:`COPY_FILES`, and temp files a killed download
    left) may be replaced; a folder with any other file is refused even then, so a download
    never deletes or mixes with files it did not write; a version folder inside a registry is
    refused in any case. A ``dest`` that is a file is left to
    the write, which names it (``File exists``).

    Raises:
        RegistryError: ``dest`` holds files (and ``overwrite`` is False, or some are foreign).
    """
    folder = Path(dest)
    if not folder.is_dir():
        return
    entries = sorted(os.listdir(folder))
    if not entries:
        return
    resolved = folder.resolve()
    if resolved.parent.name == "versions" and (resolved.parent.parent / COMPLETE_DIR).is_dir():
        raise RegistryError(
            expected_found(
                "registry download DEST",
                "a folder outside any registry",
                f"{str(folder)!r}, a published version's folder",
                "choose another DEST (a published version is never rewritten)",
            )
        )
    foreign = [e for e in entries if e not in COPY_FILES and not _TEMP_COPY_RE.fullmatch(e)]
    if not overwrite:
        raise RegistryError(
            expected_found(
                "registry download DEST",
                "a new or empty folder",
                f"{str(folder)!r} holding {len(entries)} entries ({', '.join(entries[:5])})",
                "pass --overwrite (overwrite=True) to replace an earlier download there, "
                "or choose another DEST",
            )
        )
    if foreign:
        raise RegistryError(
            expected_found(
                "registry download DEST",
                f"a folder holding only an earlier download ({', '.join(COPY_FILES)})",
                f"{str(folder)!r} also holding {', '.join(foreign[:5])}",
                "choose another DEST (--overwrite never deletes files it did not write)",
            )
        )


def write_local_copy(
    dest: str | os.PathLike[str],
    manifest_raw: bytes,
    projections: bytes,
    *,
    overwrite: bool = False,
) -> Path:
    """Write verified artifact bytes into ``dest`` (each file via temp + rename).

    Besides the two artifact files, ``manifest.sha256`` records the manifest's sha256, so that
    loading the copy (:func:`load_artifact_folder`) refuses a manifest edited afterwards.
    ``dest`` is checked with :func:`check_download_dest` first (callers check it before
    fetching, too).
    """
    check_download_dest(dest, overwrite)
    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    files = (
        (PROJECTIONS_FILE, projections),
        (MANIFEST_FILE, manifest_raw),
        (DIGEST_FILE, digest_file_bytes(manifest_raw)),
    )
    for file_name, data in files:
        temp = folder / f".{file_name}.{uuid.uuid4().hex}"
        try:
            temp.write_bytes(data)
            os.replace(temp, folder / file_name)
        finally:
            temp.unlink(missing_ok=True)
    for leftover in os.listdir(folder):  # temp files of an earlier, killed download
        if _TEMP_COPY_RE.fullmatch(leftover):
            (folder / leftover).unlink(missing_ok=True)
    return folder
