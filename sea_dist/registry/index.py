"""The per-name listing index: ``<root>/<name>/index.parquet``, one row per complete version.

The index is a cache of the manifests, never the source of truth, and it is checked before any
row is shown:

- a row is trusted only when its digest (:func:`row_digest`) equals ``summary_sha256`` in the
  version's completion marker (the registry's trust anchor), i.e. when it is exactly the row the
  publisher derived from the manifest. Otherwise (a forged or stale row, or a marker written
  before the digest existed) the version's manifest is read, checked against the marker's
  ``manifest_sha256``, and the row is rebuilt from it;
- rows of versions without a valid marker are dropped; versions missing from it are read from
  their manifests;
- a version whose ``manifest.json`` or ``projections.safetensors`` is gone (one walk of the
  ``versions`` folder shows it), or whose manifest is unreadable or was edited after
  publication, is reported in :attr:`Listing.damaged` and not listed (the fix: restore the
  files, or ``sea-dist registry gc --damaged``), never a reason to fail the listing of the
  others. A query reads only the manifests whose rows it cannot trust, so it finds an edited
  manifest behind a trusted row only at load time; ``rebuild`` (``reindex``, ``gc --damaged``)
  reads them all.

Reads never write: queries answer from the checked rows in memory. Only writers (publish, gc,
reindex) rewrite the file, with ``write=True``; concurrent rewriters are harmless (each writes a
complete, consistent file by atomic replace, and whatever one missed is added by the next).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sea_dist.errors import ArtifactError
from sea_dist.format.anchors import Marker, manifest_digest
from sea_dist.format.files import MANIFEST_FILE, PROJECTIONS_FILE
from sea_dist.format.manifest import Manifest, manifest_from_json
from sea_dist.registry.markers import complete_markers
from sea_dist.registry.storage import Storage

INDEX_FILE = "index.parquet"
INDEX_SCHEMA_VERSION = "2"  # 2: gate verdict and effect columns
_META_KEY = b"sea_dist_index_schema"
log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("version", pa.int64()),
        ("sha256", pa.string()),
        ("size_bytes", pa.int64()),
        ("created_at", pa.string()),
        ("model_id", pa.string()),
        ("model_revision", pa.string()),
        ("architecture", pa.string()),
        ("d_model", pa.int64()),
        ("n_model_layers", pa.int64()),
        ("site", pa.string()),
        ("layers", pa.list_(pa.int64())),
        ("combine", pa.string()),
        ("feature_map", pa.string()),
        ("centred", pa.bool_()),
        ("positive_energy", pa.float64()),
        ("negative_energy", pa.float64()),
        ("k_pos", pa.list_(pa.int64())),
        ("k_neg", pa.list_(pa.int64())),
        ("energy_pos", pa.list_(pa.float64())),
        ("energy_neg", pa.list_(pa.float64())),
        ("demonstrations_fingerprint", pa.string()),
        ("store_fingerprint", pa.string()),
        ("code_version", pa.string()),
        ("gate", pa.string()),
        ("effect", pa.float64()),
    ],
    metadata={_META_KEY: INDEX_SCHEMA_VERSION.encode()},
)


GATE_PASS, GATE_FAIL, GATE_UNEVALUATED = "pass", "fail", "unevaluated"


def gate_status(manifest: Manifest) -> tuple[str, float | None]:
    """``(pass | fail | unevaluated, effect value or None)`` of a version's evaluation record."""
    record = manifest.evaluation_record()
    if record is None:
        return GATE_UNEVALUATED, None
    return (GATE_PASS if record.passed else GATE_FAIL), record.metrics.get("effect")


def row_from_manifest(manifest: Manifest) -> dict[str, Any]:
    """The index row (plain JSON-able dict) of one version, typed as the index stores it.

    The values pass through the index schema (an integer energy becomes a float, as it would
    after a round trip through ``index.parquet``), so :func:`row_digest` of a row is the same
    before and after it was cached.
    """
    gate, effect = gate_status(manifest)
    row = {
        "name": manifest.name,
        "version": manifest.version,
        "sha256": manifest.sha256,
        "size_bytes": manifest.size_bytes,
        "created_at": manifest.created_at,
        "model_id": manifest.model_id,
        "model_revision": manifest.model_revision,
        "architecture": manifest.architecture,
        "d_model": manifest.d_model,
        "n_model_layers": manifest.n_model_layers,
        "site": manifest.site,
        "layers": list(manifest.layers),
        "combine": manifest.combine,
        "feature_map": str(manifest.feature_map.get("name", "linear")),
        "centred": manifest.centred,
        "positive_energy": manifest.positive_energy,
        "negative_energy": manifest.negative_energy,
        "k_pos": [s.k_pos for s in manifest.per_layer],
        "k_neg": [s.k_neg for s in manifest.per_layer],
        "energy_pos": [s.energy_pos for s in manifest.per_layer],
        "energy_neg": [s.energy_neg for s in manifest.per_layer],
        "demonstrations_fingerprint": manifest.demonstrations_fingerprint,
        "store_fingerprint": manifest.store_fingerprint,
        "code_version": manifest.code_version,
        "gate": gate,
        "effect": effect,
    }
    try:
        typed: dict[str, Any] = pa.Table.from_pylist([row], schema=SCHEMA).to_pylist()[0]
    except (pa.ArrowException, OverflowError) as error:
        raise ArtifactError(
            f"{manifest.ref}: manifest values do not fit the index ({error})"
        ) from None
    return typed


def row_digest(row: Mapping[str, Any]) -> str:
    """Hex sha256 of an index row (canonical JSON, tagged with the index schema version).

    Publish records it in the completion marker (``summary_sha256``); a row read back from
    ``index.parquet`` is trusted only when it hashes to the same value.
    """
    canonical = json.dumps(dict(row), sort_keys=True, separators=(",", ":"), allow_nan=True)
    tagged = f"sea-dist index row, schema {INDEX_SCHEMA_VERSION}\n{canonical}"
    return hashlib.sha256(tagged.encode("utf-8")).hexdigest()


def _read(storage: Storage, name: str) -> pa.Table | None:
    try:
        raw = storage.read_bytes(name, INDEX_FILE)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    try:
        # Synchronous, on this thread: pq.read_table's dataset scanner let an Arrow worker drop
        # the last reference to the Python file object after the call returned; when that
        # happened during interpreter shutdown the worker could not take the GIL and the process
        # aborted (exit 134, "terminate called without an active exception").
        with pq.ParquetFile(pa.BufferReader(raw), pre_buffer=False) as parquet:
            table = parquet.read(use_threads=False)
    except (pa.ArrowException, OSError) as error:
        log.debug("index %s is unreadable (%s); using the manifests", storage.display(name), error)
        return None
    metadata = table.schema.metadata or {}
    if metadata.get(_META_KEY) != INDEX_SCHEMA_VERSION.encode() or not table.schema.equals(SCHEMA):
        log.debug("index %s has another schema; using the manifests", storage.display(name))
        return None
    return table


def _write(storage: Storage, name: str, table: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    storage.write_bytes(buffer.getvalue(), name, INDEX_FILE)


@dataclass(frozen=True)
class Listing:
    """The checked rows of one name's complete versions.

    Attributes:
        rows: one plain dict per listable version, oldest first.
        damaged: version -> why it cannot be listed (manifest missing, unreadable or edited).
        replaced: versions whose ``index.parquet`` row did not match the manifest (forged or
            stale); the manifest's row is in ``rows``. ``sea-dist registry reindex`` rewrites
            the file.
    """

    rows: list[dict[str, Any]]
    damaged: dict[int, str] = field(default_factory=dict)
    replaced: list[int] = field(default_factory=list)


def _row_from_raw(raw: bytes, version: int, marker: Marker, what: str) -> dict[str, Any]:
    """The row of one version from its manifest bytes (checked against the marker)."""
    if marker.manifest_sha256 is not None and manifest_digest(raw) != marker.manifest_sha256:
        raise ArtifactError(f"{what}: edited after publication (sha256 differs from its marker)")
    manifest = manifest_from_json(raw, what)
    if manifest.version != version or manifest.sha256 != marker.sha256:
        raise ArtifactError(f"{what}: describes {manifest.ref}, not version {version}")
    return row_from_manifest(manifest)


def build_listing(
    storage: Storage,
    name: str,
    markers: Mapping[int, Marker],
    *,
    write: bool = False,
    rebuild: bool = False,
) -> Listing:
    """The checked index rows of the complete versions of ``name`` (see the module doc).

    Args:
        storage: the registry storage.
        name: artifact name.
        markers: the valid completion markers by version (the versions to list).
        write: rewrite ``index.parquet`` when it differs from the checked rows (writers only:
            publish, gc, reindex; a query never writes).
        rebuild: ignore the existing file and read every manifest.
    """
    table = None if rebuild else _read(storage, name)
    cached: dict[int, dict[str, Any]] = {}
    for row in table.to_pylist() if table is not None else []:
        version = row.get("version")
        if version in markers and version not in cached:
            cached[version] = row
    # One walk (one listing request on object stores) shows versions whose files were deleted.
    present = storage.list_files(name, "versions")
    damaged: dict[int, str] = {}
    for version in markers:
        missing = [f for f in (MANIFEST_FILE, PROJECTIONS_FILE) if f"{version}/{f}" not in present]
        if missing:
            folder = storage.display(name, "versions", str(version))
            damaged[version] = f"no {' and no '.join(missing)} in {folder}"
    trusted: dict[int, dict[str, Any]] = {}
    for version, row in cached.items():
        summary = markers[version].summary_sha256
        if version not in damaged and summary is not None and row_digest(row) == summary:
            trusted[version] = row
    unchecked = [v for v in markers if v not in trusted and v not in damaged]
    paths = [(name, "versions", str(v), MANIFEST_FILE) for v in unchecked]
    contents = storage.read_many(paths)
    rows: dict[int, dict[str, Any]] = dict(trusted)
    replaced: list[int] = []
    for version, path in zip(unchecked, paths):
        raw, what = contents[path], storage.display(*path)
        if raw is None:
            damaged[version] = f"no {MANIFEST_FILE} in {storage.display(*path[:-1])}"
            continue
        try:
            rows[version] = _row_from_raw(raw, version, markers[version], what)
        except ArtifactError as error:
            damaged[version] = str(error)
            continue
        if version in cached and row_digest(cached[version]) != row_digest(rows[version]):
            replaced.append(version)
    listing = Listing([rows[v] for v in sorted(rows)], damaged, replaced)
    stale = table is None or table.num_rows != len(rows) or set(cached) != set(rows)
    if write and (rebuild or stale or replaced):
        fresh = pa.Table.from_pylist(listing.rows, schema=SCHEMA)
        try:
            _write(storage, name, fresh.replace_schema_metadata(SCHEMA.metadata))
        except OSError as error:  # the caller's change is done; the next writer refreshes it
            log.warning("cannot write index %s: %s", storage.display(name, INDEX_FILE), error)
    return listing


def index_rows(
    storage: Storage, name: str, versions: list[int], rebuild: bool = False
) -> list[dict[str, Any]]:
    """The checked rows of ``versions`` of ``name``, oldest first (never writes; see
    :func:`build_listing`, which also reports damaged versions)."""
    wanted = set(versions)
    markers = {v: m for v, m in complete_markers(storage, name).items() if v in wanted}
    return build_listing(storage, name, markers, rebuild=rebuild).rows
