"""Load a published artifact with full verification: the entry point the registry and CLI use.

``load_artifact`` accepts an artifact folder (local or fsspec URL, e.g. a downloaded copy or
``<registry>/<name>/versions/<v>``) or a registry reference (``name@latest``, ``name@production``,
``name@7``, ``sha256:<prefix>``). The verification itself (layout, no pickle, sha256 against the
manifest, shapes, values, and the manifest against ``manifest.sha256`` or the registry marker)
is :mod:`sea_dist.format.artifact`; this module reads the bytes through fsspec, turns the
tensors into numpy arrays or torch tensors, and writes downloaded copies.

Needs only numpy, safetensors, fsspec and the standard library (torch only if
``framework="torch"``); the registry module is imported lazily, and only for references.
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

from sea_dist.artifacts.manifest import MANIFEST_FILE, PROJECTIONS_FILE, Manifest
from sea_dist.artifacts.markers import COMPLETE_DIR, DIGEST_FILE, digest_file_bytes
from sea_dist.errors import RegistryError, expected_found
from sea_dist.format.artifact import ArtifactContent, read_artifact_folder, verify_artifact

# Re-exported: publish verifies staged bytes with it, the HTTP API maps the error to 404.
from sea_dist.format.artifact import MissingArtifactFileError as MissingArtifactFileError
from sea_dist.format.artifact import verify_projections as verify_projections

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
    import torch

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


def load_artifact(
    path_or_ref: str | os.PathLike[str],
    registry: str | None = None,
    *,
    framework: Framework = "numpy",
    storage_options: Mapping[str, Any] | None = None,
) -> Artifact:
    """Load and verify an artifact from a folder or a registry reference.

    Args:
        path_or_ref: an artifact folder (local path or fsspec URL holding ``manifest.json``), or a
            reference ``name``, ``name@latest``, ``name@<alias>``, ``name@<version>``,
            ``sha256:<hex prefix>``.
        registry: registry URL used to resolve a reference (a folder, ``s3://...`` or the
            ``http://`` address of ``sea-dist registry serve``); default: a path (anything with
            a ``/`` or an existing folder) is loaded directly, anything else resolves in the
            default registry ``sea-runs/registry``.
        framework: tensors as ``numpy`` arrays or ``torch`` tensors.
        storage_options: fsspec options (e.g. S3 endpoint) for the folder or registry.

    Returns:
        The verified :class:`Artifact`.

    Raises:
        ArtifactError: missing, tampered, truncated or pickle-bearing files.
        RegistryError: the reference cannot be resolved.
    """
    target = os.fspath(path_or_ref)
    # A reference never contains a path separator, so anything path-like is a folder (and a
    # missing folder gets a "missing files" error rather than a confusing reference error).
    if registry is None and (
        "://" in target or "/" in target or os.sep in target or os.path.exists(target)
    ):
        return load_artifact_folder(target, framework, storage_options)
    from sea_dist.artifacts.registry import DEFAULT_REGISTRY, open_registry

    reader = open_registry(registry or DEFAULT_REGISTRY, storage_options=storage_options)
    return reader.load(target, framework=framework)


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
    :func:`load_artifact` on the copy refuses a manifest edited afterwards. ``dest`` is checked
    with :func:`check_download_dest` first (callers check it before fetching, too).
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
