"""Reading one published version from registry storage: its marker and its two files.

Every read names what is wrong and how to fix it: a version without a valid completion marker is
not published (:class:`NotFoundError`), a missing file means a damaged version
(:class:`MissingArtifactFileError`, with the fix from :func:`damage_fix`), and the manifest is
checked against the ``manifest_sha256`` its marker pins. The tensors are checked when loaded
(:func:`sea_dist.registry.loader.artifact_from_bytes`).
"""

from __future__ import annotations

from sea_dist.errors import expected_found
from sea_dist.format.anchors import COMPLETE_DIR, Marker, check_manifest_digest
from sea_dist.format.artifact import MissingArtifactFileError
from sea_dist.format.files import MANIFEST_FILE, PROJECTIONS_FILE
from sea_dist.registry.diagnosis import damage_fix
from sea_dist.registry.markers import read_marker
from sea_dist.registry.refs import NotFoundError, Resolved
from sea_dist.registry.storage import Storage


def require_marker(storage: Storage, name: str, version: int) -> Marker:
    """The valid completion marker of ``name@version``; NotFoundError when there is none."""
    marker = read_marker(storage, name, version)
    if marker is None:
        damaged = storage.exists(name, COMPLETE_DIR, f"{version}.json")
        raise NotFoundError(
            expected_found(
                f"version {name}@{version}",
                "a published version",
                "an unfinished publish (empty or damaged completion marker)" if damaged else "none",
                f"see 'sea-dist registry versions {name}'",
            )
        )
    return marker


def version_where(storage: Storage, resolved: Resolved) -> str:
    """The display location of a version's folder."""
    return storage.display(resolved.name, "versions", str(resolved.version))


def read_version_file(storage: Storage, resolved: Resolved, file_name: str) -> bytes:
    """The raw bytes of ``file_name`` in a version's folder.

    Raises:
        MissingArtifactFileError: the file is gone (the version is damaged).
    """
    base = (resolved.name, "versions", str(resolved.version))
    try:
        return storage.read_bytes(*base, file_name)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MissingArtifactFileError(
            expected_found(
                f"version {resolved.ref}",
                f"{file_name} in {storage.display(*base)}",
                "no such file",
                "the version is damaged; " + damage_fix(storage, resolved.name, resolved.version),
            )
        ) from None


def manifest_bytes(storage: Storage, resolved: Resolved) -> bytes:
    """Raw ``manifest.json`` of a version, checked against the sha256 in its marker.

    Raises:
        NotFoundError: the version is not complete.
        ArtifactError: the file is missing, or it was edited after publication.
    """
    marker = require_marker(storage, resolved.name, resolved.version)
    raw = read_version_file(storage, resolved, MANIFEST_FILE)
    if marker.manifest_sha256 is not None:
        path = (resolved.name, "versions", str(resolved.version), MANIFEST_FILE)
        anchor = storage.display(resolved.name, COMPLETE_DIR, f"{resolved.version}.json")
        check_manifest_digest(
            raw,
            marker.manifest_sha256,
            storage.display(*path),
            anchor,
            damage_fix(storage, resolved.name, resolved.version),
        )
    return raw


def artifact_files(storage: Storage, resolved: Resolved) -> tuple[bytes, bytes, str]:
    """Raw ``manifest.json`` and ``projections.safetensors`` of a version, and its location.

    The manifest is checked against the marker here; the tensors when loaded.

    Raises:
        NotFoundError: the version is not complete.
        ArtifactError: a file is missing (:class:`MissingArtifactFileError`) or the
            manifest was edited after publication.
    """
    manifest_raw = manifest_bytes(storage, resolved)
    projections = read_version_file(storage, resolved, PROJECTIONS_FILE)
    return manifest_raw, projections, version_where(storage, resolved)
