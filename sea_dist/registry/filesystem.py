"""The artifact registry: immutable numbered versions per name at any fsspec URL.

Layout below the registry root (a local folder by default, or ``s3://bucket/prefix``)::

    <name>/staging/<token>/{manifest.json, projections.safetensors}   a publish in progress
    <name>/claims/<v>.json            exclusive-create claim of version v (kept forever, so a
                                      version number is never reused, even after gc)
    <name>/versions/<v>/{manifest.json, projections.safetensors}      the immutable artifact
    <name>/complete/<v>.json          written LAST, complete or not at all: {"version", "sha256",
                                      "manifest_sha256", "summary_sha256", "completed_at"}
                                      (see markers.py)
    <name>/retired/<v>.json           a marker gc has taken out of view (see retention.py)
    <name>/aliases/current/<alias>.json, <name>/aliases/history/<alias>/*.json
    <name>/index.parquet              listing cache, checked against the markers and manifests
                                      (see :mod:`sea_dist.registry.index`); only writers
                                      (publish, gc, reindex) write it, never a query

Readers only ever see versions with a valid completion marker (an empty or damaged marker counts
as none), so a partial version is invisible. ``latest`` is the highest complete version. Every
load verifies the manifest and the tensors against the sha256 digests in the marker. See
:mod:`sea_dist.registry.publish` for the atomic publish protocol.

:class:`Registry` implements :class:`sea_dist.registry.protocol.WritableRegistry`. Publication,
the promotion gate and retention are functions over that protocol
(:func:`sea_dist.registry.publish.publish`, :func:`sea_dist.registry.gate.promote`,
:func:`sea_dist.registry.retention.collect_garbage`); ``Registry.publish``, ``promote`` and
``gc`` are those functions, bound as methods (``registry.gc(5)`` is ``collect_garbage(registry,
5)``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sea_dist.config import NAME_RE, PublishConfig
from sea_dist.errors import ArtifactError, RegistryError, expected_found
from sea_dist.format.anchors import Marker
from sea_dist.format.files import MANIFEST_FILE
from sea_dist.format.manifest import Manifest, manifest_from_json
from sea_dist.registry import aliases as alias_ops
from sea_dist.registry.diagnosis import dangling_alias, warn_damaged, warn_listing
from sea_dist.registry.diff import diff_artifacts
from sea_dist.registry.gate import promote
from sea_dist.registry.loader import (
    Artifact,
    Framework,
    artifact_from_bytes,
    check_download_dest,
    write_local_copy,
)
from sea_dist.registry.markers import MarkerCache, complete_markers, latest_version, read_marker
from sea_dist.registry.publish import publish
from sea_dist.registry.refs import (
    LATEST,
    NotFoundError,
    Resolved,
    check_alias,
    check_name,
    check_version,
    parse_ref,
)
from sea_dist.registry.retention import collect_garbage
from sea_dist.registry.storage import Storage
from sea_dist.registry.version_files import (
    artifact_files,
    manifest_bytes,
    require_marker,
    version_where,
)
from sea_dist.registry.version_query import match_sha_prefix, select_versions

DEFAULT_REGISTRY = PublishConfig().registry
log = logging.getLogger(__name__)


class Registry:
    """Publish, query and load artifacts in a registry at a folder or fsspec URL.

    Args:
        url: registry root, e.g. ``sea-runs/registry`` or ``s3://bucket/registry``.
        storage_options: fsspec options, e.g. ``{"client_kwargs": {"endpoint_url": ...}}``.
    """

    def __init__(
        self, url: str = DEFAULT_REGISTRY, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        if str(url).startswith(("http://", "https://")):
            # fsspec would accept it and fail on the first write, after the caller's work.
            raise RegistryError(
                expected_found(
                    "registry",
                    "a folder or fsspec URL (the storage behind the registry)",
                    str(url),
                    "the HTTP API of 'sea-dist registry serve' is read-only: query it with "
                    "open_registry(url) or --registry, publish into its storage folder or URL",
                )
            )
        self.storage = Storage(url, storage_options)
        self.url = self.storage.url
        self._markers: MarkerCache = {}  # markers are immutable: parse each once per instance

    # -- writes: publish, promote and gc ARE the functions over the protocol (self = registry) --

    publish = publish
    promote = promote
    gc = collect_garbage

    def set_alias(self, name: str, alias: str, version: int | str) -> dict[str, Any]:
        """Move ``alias`` of ``name`` to a complete ``version``; returns the history record.

        The low-level move: it does not consult the promotion gate. Tools that move aliases for
        users (the CLI, the pipeline) use :func:`sea_dist.registry.gate.promote`.
        """
        check_name(name)
        check_alias(alias)
        number = check_version(version)
        if read_marker(self.storage, name, number) is None:
            raise NotFoundError(
                expected_found(
                    f"alias {name}@{alias}",
                    "an existing version",
                    f"{name}@{number}",
                    f"see 'sea-dist registry versions {name}'",
                )
            )
        return alias_ops.move_alias(self.storage, name, alias, number)

    def reindex(self, name: str | None = None) -> dict[str, int]:
        """Rebuild the listing index of ``name`` (or every name) from the manifests.

        Damaged versions (manifest gone or edited) are left out and logged with their fix.

        Returns:
            name -> number of versions indexed.
        """
        from sea_dist.registry.index import build_listing  # pyarrow, an optional dependency

        names = [check_name(name)] if name else self.names()
        counts = {}
        for current in names:
            listing = build_listing(
                self.storage, current, self._complete_markers(current), write=True, rebuild=True
            )
            warn_damaged(self.storage, current, listing.damaged)
            counts[current] = len(listing.rows)
        return counts

    # -- queries -----------------------------------------------------------------------------

    def _complete_markers(self, name: str) -> dict[int, Marker]:
        return complete_markers(self.storage, name, self._markers)

    def complete_versions(self, name: str) -> list[int]:
        """Version numbers of ``name`` that readers can see, ascending."""
        return list(self._complete_markers(check_name(name)))

    def names(self) -> list[str]:
        """Names with at least one complete version."""
        return [
            n
            for n in self.storage.list_dir()
            if NAME_RE.fullmatch(n) and latest_version(self.storage, n) is not None
        ]

    def _unknown_name(self, name: str) -> NotFoundError:
        known = ", ".join(self.names()[:10]) or "none"
        return NotFoundError(
            expected_found("artifact name", f"a published name ({known})", name, "publish it first")
        )

    def _require_latest(self, name: str) -> int:
        """The latest version of ``name`` (cheaper than listing all); NotFoundError if none."""
        latest = latest_version(self.storage, check_name(name))
        if latest is None:
            raise self._unknown_name(name)
        return latest

    def versions(
        self,
        name: str,
        *,
        model_id: str | None = None,
        dataset: str | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> list[dict[str, Any]]:
        """Summaries of the versions of ``name``, oldest first, filtered.

        Args:
            name: artifact name.
            model_id: keep versions fitted on this model id.
            dataset: keep versions whose demonstrations fingerprint starts with this.
            after: keep versions created at or after this ISO-8601 time (naive = UTC).
            before: keep versions created before this time.
        """
        from sea_dist.registry.index import build_listing  # pyarrow, an optional dependency

        markers = self._complete_markers(check_name(name))
        if not markers:
            raise self._unknown_name(name)
        listing = build_listing(self.storage, name, markers)  # a query: checks, never writes
        aliases = alias_ops.read_aliases(self.storage, name)
        warn_listing(self.storage, name, listing, aliases, markers)
        return select_versions(
            name,
            listing.rows,
            aliases,
            max(markers),  # what name@latest resolves to
            model_id=model_id,
            dataset=dataset,
            after=after,
            before=before,
        )

    def resolve(self, ref: str) -> Resolved:
        """Resolve ``name[@latest|@alias|@version]`` or ``sha256:<prefix>`` to one version."""
        parsed = parse_ref(ref)
        if parsed.sha256 is not None:
            markers = {name: self._complete_markers(name) for name in self.names()}
            return match_sha_prefix(parsed.sha256, markers)
        assert parsed.name is not None
        name = parsed.name
        if parsed.version is not None:
            version = parsed.version
        elif parsed.alias == LATEST:
            version = self._require_latest(name)
        else:
            assert parsed.alias is not None
            target = alias_ops.read_alias(self.storage, name, parsed.alias)
            if target is None:
                known = ", ".join(alias_ops.read_aliases(self.storage, name)) or "none"
                raise NotFoundError(
                    expected_found(
                        f"alias {name}@{parsed.alias}",
                        f"an existing alias ({known})",
                        "none",
                        "use 'sea-dist registry alias' to create it",
                    )
                )
            version = target
            if read_marker(self.storage, name, version) is None:
                raise NotFoundError(dangling_alias(self.storage, name, parsed.alias, version))
        marker = require_marker(self.storage, name, version)
        return Resolved(name=name, version=version, sha256=marker.sha256)

    def manifest(self, ref: str) -> Manifest:
        """The manifest of the version ``ref`` resolves to (checked against its marker)."""
        resolved = self.resolve(ref)
        where = version_where(self.storage, resolved)
        return manifest_from_json(self.manifest_bytes(resolved), f"{where}/{MANIFEST_FILE}")

    def aliases(self, name: str) -> dict[str, int]:
        """User aliases of ``name`` and their versions.

        Raises:
            NotFoundError: ``name`` has no published version.
        """
        self._require_latest(name)
        return alias_ops.read_aliases(self.storage, name)

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        """Every move of ``alias``, oldest first.

        Raises:
            NotFoundError: ``name`` has no published version.
        """
        check_name(name)
        check_alias(alias)
        self._require_latest(name)
        return alias_ops.alias_history(self.storage, name, alias)

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """Compare two versions: settings, per-layer k, energy and subspace similarity."""
        return diff_artifacts(self.load(a), self.load(b))

    # -- files -------------------------------------------------------------------------------

    def manifest_bytes(self, resolved: Resolved) -> bytes:
        """Raw ``manifest.json`` of a version, checked against the sha256 in its marker.

        See :func:`sea_dist.registry.version_files.manifest_bytes`.
        """
        return manifest_bytes(self.storage, resolved)

    def artifact_files(self, resolved: Resolved) -> tuple[bytes, bytes, str]:
        """Raw ``manifest.json`` and ``projections.safetensors`` of a version, and its location.

        See :func:`sea_dist.registry.version_files.artifact_files`.
        """
        return artifact_files(self.storage, resolved)

    def _load_resolved(
        self, resolved: Resolved, framework: Framework
    ) -> tuple[Artifact, bytes, bytes]:
        manifest_raw, projections, where = self.artifact_files(resolved)
        artifact = artifact_from_bytes(manifest_raw, projections, where, framework)
        if artifact.manifest.sha256 != resolved.sha256 or artifact.manifest.version != (
            resolved.version
        ):
            raise ArtifactError(
                expected_found(
                    f"{where}/{MANIFEST_FILE}",
                    f"sha256 {resolved.sha256} of {resolved.ref}",
                    f"sha256 {artifact.manifest.sha256} of {artifact.manifest.ref}",
                    "the manifest was modified; restore it",
                )
            )
        return artifact, manifest_raw, projections

    def load(self, ref: str, framework: Framework = "numpy") -> Artifact:
        """Resolve ``ref`` and load the verified artifact (layout, sha256, shapes, values)."""
        return self._load_resolved(self.resolve(ref), framework)[0]

    def download(self, ref: str, dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Copy a version to the local folder ``dest`` after verifying it; returns ``dest``.

        Args:
            ref: the version to copy.
            dest: a new or empty folder; with ``overwrite``, also a folder holding an earlier
                download (nothing but its files).
            overwrite: replace an earlier download in ``dest``.

        Raises:
            RegistryError: ``dest`` holds files (see :func:`check_download_dest`).
        """
        check_download_dest(dest, overwrite)
        _, manifest_raw, projections = self._load_resolved(self.resolve(ref), "numpy")
        return write_local_copy(dest, manifest_raw, projections, overwrite=overwrite)
