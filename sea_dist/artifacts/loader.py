"""Load a published artifact with full verification: the entry point the edit module uses.

``load_artifact`` accepts an artifact folder (local or fsspec URL, e.g. a downloaded copy or
``<registry>/<name>/versions/<v>``) or a registry reference (``name@latest``, ``name@production``,
``name@7``, ``sha256:<prefix>``). Before returning, it checks the safetensors layout (a pickle,
zip or truncated file is refused with a clear message), the sha256 of ``projections.safetensors``
against the manifest, and that every layer's tensors have the shapes the manifest promises.

The manifest itself is checked against a recorded sha256 (see :mod:`sea_dist.artifacts.markers`):
through a registry reference, the digest in the version's completion marker; for a folder, the
``manifest.sha256`` file a download writes next to it, and, when the folder is a version inside a
registry (``<name>/versions/<v>``), that version's completion marker. A folder with neither (a
copy made by hand from an older sea-dist) is checked through the tensors' sha256 only.

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

from sea_dist.artifacts.manifest import (
    MANIFEST_FILE,
    PROJECTIONS_FILE,
    Manifest,
    manifest_from_json,
)
from sea_dist.artifacts.markers import (
    COMPLETE_DIR,
    DIGEST_FILE,
    check_manifest_digest,
    digest_file_bytes,
    parse_digest_file,
    parse_marker,
)
from sea_dist.artifacts.tensors import check_tensor_names, decode, parse_header, sha256_hex
from sea_dist.artifacts.values import check_projection_values
from sea_dist.errors import ArtifactError, RegistryError, expected_found

Framework = Literal["numpy", "torch"]


class MissingArtifactFileError(ArtifactError):
    """A file of an artifact (or of a published version) is gone (HTTP 404, CLI exit 2)."""


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

    def check_model(
        self, *, d_model: int, n_model_layers: int | None = None, model_id: str | None = None
    ) -> None:
        """Refuse a model this artifact was not fitted for.

        Raises:
            ArtifactError: hidden size, layer count or model id differ.
        """
        m = self.manifest
        if d_model != m.d_model:
            raise ArtifactError(
                expected_found(
                    f"{m.ref}: model hidden size",
                    str(m.d_model),
                    d_model,
                    "use an artifact fitted on this model",
                )
            )
        if n_model_layers is not None and n_model_layers != m.n_model_layers:
            raise ArtifactError(
                expected_found(
                    f"{m.ref}: model decoder layers",
                    str(m.n_model_layers),
                    n_model_layers,
                    "use an artifact fitted on this model",
                )
            )
        if model_id is not None and model_id != m.model_id:
            raise ArtifactError(
                expected_found(
                    f"{m.ref}: model id",
                    m.model_id,
                    model_id,
                    "use an artifact fitted on this model",
                )
            )


def verify_projections(manifest: Manifest, data: bytes, what: str) -> None:
    """Check ``projections.safetensors`` bytes against a manifest (layout, sha256, shapes).

    Raises:
        ArtifactError: pickle/zip/truncated content, a checksum mismatch, or wrong shapes.
    """
    tensors = parse_header(data, what)
    digest = sha256_hex(data)
    if digest != manifest.sha256:
        raise ArtifactError(
            expected_found(
                f"{what}: sha256",
                manifest.sha256,
                digest,
                "the file was modified or corrupted; re-download or re-publish it",
            )
        )
    check_tensor_names(tensors, what)
    for summary in manifest.per_layer:
        L = summary.layer
        expected: dict[str, tuple[int, ...]] = {
            f"layers.{L}.U_pos": (manifest.d_model, summary.k_pos),
            f"layers.{L}.U_neg": (manifest.d_model, summary.k_neg),
        }
        if manifest.centred:
            expected[f"layers.{L}.mean"] = (manifest.d_model,)
        for name, shape in expected.items():
            info = tensors.get(name)
            if info is None or info.shape != shape:
                raise ArtifactError(
                    expected_found(
                        f"{what}: tensor {name}",
                        f"shape {shape}",
                        info.shape if info else "no such tensor",
                    )
                )


def artifact_from_bytes(
    manifest_raw: bytes, projections: bytes, source: str, framework: Framework = "numpy"
) -> Artifact:
    """Verify and decode an artifact held in memory (see :func:`load_artifact`)."""
    manifest = manifest_from_json(manifest_raw, f"{source}/{MANIFEST_FILE}")
    what = f"{source}/{PROJECTIONS_FILE}"
    verify_projections(manifest, projections, what)
    arrays = decode(projections, what)
    check_projection_values(arrays, what)  # a hash pins bytes, not that they are a projection
    convert: Any = _to_torch if framework == "torch" else (lambda a: a)
    layers = {}
    for summary in manifest.per_layer:
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
    return Artifact(manifest=manifest, layers=layers, source=source)


def _to_torch(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.array(array, copy=True))


def _read_optional(fs: Any, path: str) -> bytes | None:
    try:
        return bytes(fs.cat_file(path))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _check_folder_manifest(fs: Any, root: str, manifest_raw: bytes, url: str) -> None:
    """Check a folder's manifest against ``manifest.sha256`` and its registry marker, if any."""
    what = f"{url}/{MANIFEST_FILE}"
    recorded = _read_optional(fs, f"{root}/{DIGEST_FILE}")
    if recorded is not None:
        expected = parse_digest_file(recorded, f"{url}/{DIGEST_FILE}")
        check_manifest_digest(manifest_raw, expected, what, f"{url}/{DIGEST_FILE}")
    # A version folder inside a registry (<root>/<name>/versions/<v>): its marker is the anchor.
    parent, kind, version = ([""] * 3 + root.rsplit("/", 2))[-3:]
    if kind == "versions" and version.isdigit() and parent:
        marker_path = f"{parent}/{COMPLETE_DIR}/{version}.json"
        marker = parse_marker(_read_optional(fs, marker_path), int(version))
        if marker is not None and marker.manifest_sha256 is not None:
            name = parent.rsplit("/", 1)[-1]
            fix = (
                "restore it from a copy, or retire the version with "
                f"'sea-dist registry gc --damaged --name {name}'"
            )
            check_manifest_digest(manifest_raw, marker.manifest_sha256, what, marker_path, fix)


def load_artifact_folder(
    url: str,
    framework: Framework = "numpy",
    storage_options: Mapping[str, Any] | None = None,
) -> Artifact:
    """Load and verify the artifact folder at ``url`` (local folder or fsspec URL)."""
    fs, root = fsspec.core.url_to_fs(str(url), **dict(storage_options or {}))
    root = str(root).rstrip("/")
    manifest_raw = _read_optional(fs, f"{root}/{MANIFEST_FILE}")
    projections = _read_optional(fs, f"{root}/{PROJECTIONS_FILE}")
    if manifest_raw is None or projections is None:
        missing = [
            name
            for name, data in ((MANIFEST_FILE, manifest_raw), (PROJECTIONS_FILE, projections))
            if data is None
        ]
        raise MissingArtifactFileError(
            expected_found(
                f"artifact {url}",
                f"a folder with {MANIFEST_FILE} and {PROJECTIONS_FILE}",
                f"no {' and no '.join(missing)}",
                "point at an artifact folder, or download the version again",
            )
        )
    source = str(url).rstrip("/")
    _check_folder_manifest(fs, root, manifest_raw, source)
    return artifact_from_bytes(manifest_raw, projections, source, framework)


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
