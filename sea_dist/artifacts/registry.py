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
                                      (see :mod:`sea_dist.artifacts.index`); only writers
                                      (publish, gc, reindex) write it, never a query

Readers only ever see versions with a valid completion marker (an empty or damaged marker counts
as none), so a partial version is invisible. ``latest`` is the highest complete version. Every
load verifies the manifest and the tensors against the sha256 digests in the marker. See
:mod:`sea_dist.artifacts.publish` for the atomic publish protocol.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sea_dist.artifacts import aliases as alias_ops
from sea_dist.artifacts.diagnosis import damage_fix, dangling_alias, warn_damaged, warn_listing
from sea_dist.artifacts.loader import (
    Artifact,
    Framework,
    MissingArtifactFileError,
    artifact_from_bytes,
    check_download_dest,
    write_local_copy,
)
from sea_dist.artifacts.manifest import (
    MANIFEST_FILE,
    PROJECTIONS_FILE,
    Manifest,
    manifest_from_json,
)
from sea_dist.artifacts.markers import (
    COMPLETE_DIR,
    Marker,
    MarkerCache,
    check_manifest_digest,
    complete_markers,
    latest_version,
    read_marker,
)
from sea_dist.artifacts.refs import (
    LATEST,
    NotFoundError,
    Resolved,
    check_alias,
    check_name,
    check_version,
    parse_ref,
)
from sea_dist.artifacts.storage import Storage
from sea_dist.config import NAME_RE, PublishConfig
from sea_dist.errors import ArtifactError, RegistryError, expected_found

if TYPE_CHECKING:
    from sea_dist.artifacts.gate import PromotionResult
    from sea_dist.artifacts.retention import GcEntry
    from sea_dist.format.recipe import EditRecipe, EvaluationRecord

DEFAULT_REGISTRY = PublishConfig().registry
log = logging.getLogger(__name__)


class RegistryReader(Protocol):
    """The read-only query API shared by :class:`Registry` and the HTTP client."""

    url: str

    def names(self) -> list[str]: ...

    def versions(
        self,
        name: str,
        *,
        model_id: str | None = None,
        dataset: str | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> list[dict[str, Any]]: ...

    def resolve(self, ref: str) -> Resolved: ...

    def manifest(self, ref: str) -> Manifest: ...

    def aliases(self, name: str) -> dict[str, int]: ...

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]: ...

    def diff(self, a: str, b: str) -> dict[str, Any]: ...

    def download(
        self, ref: str, dest: str | os.PathLike[str], *, overwrite: bool = False
    ) -> Path: ...

    def load(self, ref: str, framework: Framework = "numpy") -> Artifact: ...


def open_registry(url: str, storage_options: Mapping[str, Any] | None = None) -> RegistryReader:
    """A :class:`Registry` for a folder or fsspec URL, or an HTTP client for ``http(s)://``."""
    if str(url).startswith(("http://", "https://")):
        from sea_dist.artifacts.client import HttpRegistry

        return HttpRegistry(str(url))
    return Registry(url, storage_options=storage_options)


def parse_time(value: str, what: str) -> dt.datetime:
    """Parse an ISO-8601 date or datetime (naive means UTC)."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise RegistryError(
            expected_found(
                what, "an ISO-8601 date or time like 2026-01-31 or 2026-01-31T12:00:00Z", value
            )
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


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

    # -- writes ------------------------------------------------------------------------------

    def publish(
        self,
        fit_dir: str | os.PathLike[str],
        name: str,
        aliases: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        created_at: str | None = None,
        input_fingerprint: str | None = None,
        *,
        recipe: EditRecipe | None = None,
        evaluation: EvaluationRecord | None = None,
        gated_aliases: Sequence[str] | None = None,
    ) -> Resolved:
        """Publish a fit-output folder as the next version of ``name``.

        Args:
            fit_dir: fit output (``fit.json`` + ``projections.safetensors``, optionally
                ``recipe.json`` and ``evaluation.json``), folder or URL.
            name: artifact name (lowercase ``[a-z0-9._-]``, at most 100 characters).
            aliases: user aliases to move to the new version, each through the promotion gate
                when it is gated (:func:`sea_dist.artifacts.gate.promote`); a refused alias is
                left where it was and logged (use :meth:`promote` to see the verdict).
            config: the full resolved run config, recorded in the manifest.
            created_at: override the publication time (ISO-8601; imports, tests).
            input_fingerprint: fingerprint of the run's inputs (the scheduler compares it).
            recipe: the edit recipe (wins over the fit output's ``recipe.json``).
            evaluation: the evaluation record (wins over the fit output's ``evaluation.json``).
            gated_aliases: the gated aliases (default ``publish.gated_aliases``' default).

        Returns:
            The new version.
        """
        from sea_dist.artifacts.publish import publish

        for alias in aliases:
            check_alias(alias)
        resolved = publish(
            self.storage,
            os.fspath(fit_dir),
            name,
            config,
            created_at,
            input_fingerprint,
            recipe=recipe,
            evaluation=evaluation,
        )
        for alias in aliases:
            result = self.promote(name, resolved.version, alias, gated_aliases=gated_aliases)
            if not result.moved:
                log.warning("%s", result.line())
        return resolved

    def promote(
        self,
        name: str,
        version: int | str,
        alias: str,
        *,
        force: bool = False,
        reason: str | None = None,
        gated: bool = False,
        gated_aliases: Sequence[str] | None = None,
    ) -> PromotionResult:
        """Move ``alias`` to ``version`` through the promotion gate when the alias is gated.

        See :func:`sea_dist.artifacts.gate.promote` (``moved`` is False when the gate refused).
        """
        from sea_dist.artifacts.gate import promote

        return promote(
            self,
            name,
            version,
            alias,
            force=force,
            reason=reason,
            gated=gated,
            gated_aliases=gated_aliases,
        )

    def set_alias(self, name: str, alias: str, version: int | str) -> dict[str, Any]:
        """Move ``alias`` of ``name`` to a complete ``version``; returns the history record.

        The low-level move: it does not consult the promotion gate. Tools that move aliases for
        users (the CLI, the pipeline) use :meth:`promote`.
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

    def gc(
        self,
        keep: int | None,
        name: str | None = None,
        dry_run: bool = False,
        *,
        damaged: bool = False,
    ) -> list[GcEntry]:
        """Remove all but the ``keep`` newest versions (never one an alias points to).

        With ``damaged``, also retire versions whose ``manifest.json`` or
        ``projections.safetensors`` is gone (``keep`` may then be None). See
        :func:`sea_dist.artifacts.retention.collect_garbage`.
        """
        from sea_dist.artifacts.retention import collect_garbage

        return collect_garbage(self, keep, name=name, dry_run=dry_run, damaged=damaged)

    def reindex(self, name: str | None = None) -> dict[str, int]:
        """Rebuild the listing index of ``name`` (or every name) from the manifests.

        Damaged versions (manifest gone or edited) are left out and logged with their fix.

        Returns:
            name -> number of versions indexed.
        """
        from sea_dist.artifacts.index import build_listing

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

    def _complete(self, name: str) -> list[int]:
        return list(self._complete_markers(name))

    def complete_versions(self, name: str) -> list[int]:
        """Version numbers of ``name`` that readers can see, ascending."""
        return self._complete(check_name(name))

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

    def _require_name(self, name: str) -> list[int]:
        """The complete versions of ``name``; NotFoundError when it has none."""
        versions = self._complete(check_name(name))
        if not versions:
            raise self._unknown_name(name)
        return versions

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
        from sea_dist.artifacts.index import build_listing

        markers = self._complete_markers(check_name(name))
        if not markers:
            raise self._unknown_name(name)
        listing = build_listing(self.storage, name, markers)  # a query: checks, never writes
        aliases = alias_ops.read_aliases(self.storage, name)
        warn_listing(self.storage, name, listing, aliases, markers)
        rows = listing.rows
        start = parse_time(after, "after") if after else None
        end = parse_time(before, "before") if before else None
        by_version: dict[int, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        latest = max(markers) if markers else None  # what name@latest resolves to
        result = []
        for row in rows:
            if model_id is not None and row["model_id"] != model_id:
                continue
            if dataset is not None and not row["demonstrations_fingerprint"].startswith(dataset):
                continue
            if start or end:
                created = parse_time(row["created_at"], "created_at")
                if start and created < start or end and created >= end:
                    continue
            labels = by_version.get(row["version"], [])
            labels = ([LATEST] if row["version"] == latest else []) + labels
            result.append({**row, "ref": f"{name}@{row['version']}", "aliases": labels})
        return result

    def _marker(self, name: str, version: int) -> Marker:
        """The valid completion marker of ``name@version``; NotFoundError when there is none."""
        marker = read_marker(self.storage, name, version)
        if marker is None:
            damaged = self.storage.exists(name, COMPLETE_DIR, f"{version}.json")
            raise NotFoundError(
                expected_found(
                    f"version {name}@{version}",
                    "a published version",
                    "an unfinished publish (empty or damaged completion marker)"
                    if damaged
                    else "none",
                    f"see 'sea-dist registry versions {name}'",
                )
            )
        return marker

    def resolve(self, ref: str) -> Resolved:
        """Resolve ``name[@latest|@alias|@version]`` or ``sha256:<prefix>`` to one version."""
        parsed = parse_ref(ref)
        if parsed.sha256 is not None:
            return self._resolve_sha(parsed.sha256)
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
        marker = self._marker(name, version)
        return Resolved(name=name, version=version, sha256=marker.sha256)

    def _resolve_sha(self, prefix: str) -> Resolved:
        # The markers hold every version's content sha256: no index, no manifest, no write.
        matches = [
            Resolved(name, version, marker.sha256)
            for name in self.names()
            for version, marker in self._complete_markers(name).items()
            if marker.sha256.startswith(prefix)
        ]
        if not matches:
            raise NotFoundError(
                expected_found(
                    "reference", "a published content sha256", f"sha256:{prefix}", "check the hash"
                )
            )
        if len({(m.name, m.sha256) for m in matches}) > 1:
            found = ", ".join(m.ref for m in matches[:5])
            raise RegistryError(
                expected_found(
                    "reference",
                    "a sha256 prefix matching one artifact",
                    f"sha256:{prefix} ({found})",
                    "give more hex digits or use name@version",
                )
            )
        # The same content published several times under one name: the newest version.
        return max(matches, key=lambda m: m.version)

    def manifest(self, ref: str) -> Manifest:
        """The manifest of the version ``ref`` resolves to (checked against its marker)."""
        resolved = self.resolve(ref)
        where = self.storage.display(resolved.name, "versions", str(resolved.version))
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
        from sea_dist.artifacts.diff import diff_artifacts

        return diff_artifacts(self.load(a), self.load(b))

    # -- files -------------------------------------------------------------------------------

    def _read_version_file(self, resolved: Resolved, file_name: str) -> bytes:
        base = (resolved.name, "versions", str(resolved.version))
        try:
            return self.storage.read_bytes(*base, file_name)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise MissingArtifactFileError(
                expected_found(
                    f"version {resolved.ref}",
                    f"{file_name} in {self.storage.display(*base)}",
                    "no such file",
                    "the version is damaged; "
                    + damage_fix(self.storage, resolved.name, resolved.version),
                )
            ) from None

    def manifest_bytes(self, resolved: Resolved) -> bytes:
        """Raw ``manifest.json`` of a version, checked against the sha256 in its marker.

        Raises:
            NotFoundError: the version is not complete.
            ArtifactError: the file is missing, or it was edited after publication.
        """
        marker = self._marker(resolved.name, resolved.version)
        raw = self._read_version_file(resolved, MANIFEST_FILE)
        if marker.manifest_sha256 is not None:
            path = (resolved.name, "versions", str(resolved.version), MANIFEST_FILE)
            anchor = self.storage.display(resolved.name, COMPLETE_DIR, f"{resolved.version}.json")
            check_manifest_digest(
                raw,
                marker.manifest_sha256,
                self.storage.display(*path),
                anchor,
                damage_fix(self.storage, resolved.name, resolved.version),
            )
        return raw

    def artifact_files(self, resolved: Resolved) -> tuple[bytes, bytes, str]:
        """Raw ``manifest.json`` and ``projections.safetensors`` of a version, and its location.

        The manifest is checked against the marker here; the tensors when loaded.

        Raises:
            NotFoundError: the version is not complete.
            ArtifactError: a file is missing (:class:`MissingArtifactFileError`) or the
                manifest was edited after publication.
        """
        manifest_raw = self.manifest_bytes(resolved)
        projections = self._read_version_file(resolved, PROJECTIONS_FILE)
        where = self.storage.display(resolved.name, "versions", str(resolved.version))
        return manifest_raw, projections, where

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
        """Resolve ``ref`` and load the verified artifact (see :func:`load_artifact`)."""
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
