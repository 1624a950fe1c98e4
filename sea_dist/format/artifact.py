"""Read and verify an artifact folder: the one artifact reader (numpy, safetensors, json).

An artifact is ``manifest.json`` + ``projections.safetensors`` (docs/formats.md section 3).
Before anything is returned, :func:`verify_artifact` checks the safetensors layout (a pickle, zip
or truncated file is refused with a clear message), the sha256 of the projections against the
manifest, the tensor names, that every layer's tensors have the shapes the manifest promises, and
their values (:mod:`sea_dist.format.values`).

:func:`read_artifact_folder` also checks the manifest against what anchors it
(:mod:`sea_dist.format.anchors`): the ``manifest.sha256`` file a download writes next to it, and,
when the folder is a version inside a registry (``<name>/versions/<v>``), that version's
completion marker. A folder with neither (a copy made by hand from an older sea-dist) is checked
through the tensors' sha256 only. It reads through a callable, so the same check serves local
folders (:func:`read_local_artifact`, used by :mod:`sea_dist.edit`) and fsspec URLs
(:mod:`sea_dist.registry.loader`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sea_dist.errors import ArtifactError, expected_found
from sea_dist.format.anchors import (
    COMPLETE_DIR,
    DIGEST_FILE,
    check_manifest_digest,
    parse_digest_file,
    parse_marker,
)
from sea_dist.format.files import MANIFEST_FILE, PROJECTIONS_FILE
from sea_dist.format.hashing import sha256_hex
from sea_dist.format.manifest import Manifest, manifest_from_json
from sea_dist.format.tensors import check_tensor_names, decode, parse_header
from sea_dist.format.values import check_projection_values

Reader = Callable[[str], "bytes | None"]
"""Reads a file by path: its bytes, or None when there is no such file."""


class MissingArtifactFileError(ArtifactError):
    """A file of an artifact (or of a published version) is gone (HTTP 404, CLI exit 2)."""


@dataclass(frozen=True)
class ArtifactContent:
    """A verified artifact: its parsed manifest and decoded tensors.

    Attributes:
        manifest: the parsed ``manifest.json``.
        manifest_raw: its bytes as stored (what the anchors pin).
        arrays: ``layers.<L>.{U_pos,U_neg,S_pos,S_neg,mean}`` as numpy arrays (U and mean
            float32, S float64 as written), all checked.
        source: where it was read from, for messages.
    """

    manifest: Manifest
    manifest_raw: bytes
    arrays: dict[str, np.ndarray]
    source: str


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


def verify_artifact(manifest_raw: bytes, projections: bytes, source: str) -> ArtifactContent:
    """Parse and verify an artifact held in memory (see the module doc).

    Args:
        manifest_raw: the bytes of ``manifest.json``.
        projections: the bytes of ``projections.safetensors``.
        source: where they came from (folder or URL), for messages.

    Raises:
        ArtifactError: a malformed manifest, tampered or pickle-bearing tensors, wrong shapes
            or unusable values.
    """
    manifest = manifest_from_json(manifest_raw, f"{source}/{MANIFEST_FILE}")
    what = f"{source}/{PROJECTIONS_FILE}"
    verify_projections(manifest, projections, what)
    arrays = decode(projections, what)
    check_projection_values(arrays, what)  # a hash pins bytes, not that they are a projection
    return ArtifactContent(manifest, manifest_raw, arrays, source)


def check_manifest_anchors(read: Reader, root: str, manifest_raw: bytes, source: str) -> None:
    """Check a folder's manifest against ``manifest.sha256`` and its registry marker, if any.

    Args:
        read: reads a file by path (None when absent).
        root: the folder's path as ``read`` takes it, without a trailing ``/``.
        manifest_raw: the folder's ``manifest.json`` bytes.
        source: the folder as the user named it, for messages.

    Raises:
        ArtifactError: the manifest differs from what an anchor records, or the digest file is
            malformed.
    """
    what = f"{source}/{MANIFEST_FILE}"
    recorded = read(f"{root}/{DIGEST_FILE}")
    if recorded is not None:
        expected = parse_digest_file(recorded, f"{source}/{DIGEST_FILE}")
        check_manifest_digest(manifest_raw, expected, what, f"{source}/{DIGEST_FILE}")
    # A version folder inside a registry (<root>/<name>/versions/<v>): its marker is the anchor.
    parent, kind, version = ([""] * 3 + root.rsplit("/", 2))[-3:]
    if kind == "versions" and version.isdigit() and parent:
        marker_path = f"{parent}/{COMPLETE_DIR}/{version}.json"
        marker = parse_marker(read(marker_path), int(version))
        if marker is not None and marker.manifest_sha256 is not None:
            name = parent.rsplit("/", 1)[-1]
            fix = (
                "restore it from a copy, or retire the version with "
                f"'sea-dist registry gc --damaged --name {name}'"
            )
            check_manifest_digest(manifest_raw, marker.manifest_sha256, what, marker_path, fix)


def read_artifact_folder(read: Reader, root: str, source: str) -> ArtifactContent:
    """Read the artifact folder at ``root`` through ``read`` and verify all of it.

    Raises:
        MissingArtifactFileError: ``manifest.json`` or ``projections.safetensors`` is absent.
        ArtifactError: anything :func:`check_manifest_anchors` or :func:`verify_artifact`
            refuses.
    """
    manifest_raw = read(f"{root}/{MANIFEST_FILE}")
    projections = read(f"{root}/{PROJECTIONS_FILE}")
    if manifest_raw is None or projections is None:
        missing = [
            name
            for name, data in ((MANIFEST_FILE, manifest_raw), (PROJECTIONS_FILE, projections))
            if data is None
        ]
        raise MissingArtifactFileError(
            expected_found(
                f"artifact {source}",
                f"a folder with {MANIFEST_FILE} and {PROJECTIONS_FILE}",
                f"no {' and no '.join(missing)}",
                "point at an artifact folder, or download the version again",
            )
        )
    check_manifest_anchors(read, root, manifest_raw, source)
    return verify_artifact(manifest_raw, projections, source)


def read_local_file(path: str) -> bytes | None:
    """The bytes of the local file ``path``, or None when it is not a readable file."""
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def read_local_artifact(folder: Path) -> ArtifactContent:
    """:func:`read_artifact_folder` for a local folder (no fsspec)."""
    root = os.path.abspath(os.path.expanduser(folder))
    return read_artifact_folder(read_local_file, root, str(folder).rstrip("/"))
