"""The per-name listing index: ``<root>/<name>/index.parquet``, one row per complete version.

The index is a cache of the manifests, never the source of truth. Every read reconciles it with
the completion markers (one directory listing): rows of versions that no longer exist are dropped,
manifests of versions missing from it are read (concurrently on object stores) and added, and the
file is rewritten only when something changed. A missing, unreadable or other-schema index is
rebuilt from the manifests. Concurrent rewriters are harmless: each writes a complete, consistent
file (atomic replace), and whatever one of them missed is added by the next read.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sea_dist.artifacts.manifest import MANIFEST_FILE, Manifest, manifest_from_json
from sea_dist.artifacts.storage import Storage
from sea_dist.errors import ArtifactError

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
    """The index row (plain JSON-able dict) of one version."""
    gate, effect = gate_status(manifest)
    return {
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


def _read(storage: Storage, name: str) -> pa.Table | None:
    try:
        raw = storage.read_bytes(name, INDEX_FILE)
    except FileNotFoundError:
        return None
    try:
        # Synchronous, on this thread: pq.read_table's dataset scanner let an Arrow worker drop
        # the last reference to the Python file object after the call returned; when that
        # happened during interpreter shutdown the worker could not take the GIL and the process
        # aborted (exit 134, "terminate called without an active exception").
        with pq.ParquetFile(pa.BufferReader(raw), pre_buffer=False) as parquet:
            table = parquet.read(use_threads=False)
    except (pa.ArrowException, OSError) as error:
        log.warning("index %s is unreadable (%s); rebuilding it", storage.display(name), error)
        return None
    metadata = table.schema.metadata or {}
    if metadata.get(_META_KEY) != INDEX_SCHEMA_VERSION.encode() or not table.schema.equals(SCHEMA):
        log.info("index %s has another schema; rebuilding it", storage.display(name))
        return None
    return table


def _write(storage: Storage, name: str, table: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    storage.write_bytes(buffer.getvalue(), name, INDEX_FILE)


def index_table(
    storage: Storage, name: str, versions: list[int], rebuild: bool = False
) -> pa.Table:
    """The index of the complete ``versions`` of ``name``, sorted by version; refreshes the file.

    Args:
        storage: the registry storage.
        name: artifact name.
        versions: the complete versions (from the completion markers).
        rebuild: ignore the existing index and read every manifest.

    Raises:
        ArtifactError: a complete version's manifest is missing or malformed.
    """
    wanted = set(versions)
    table = None if rebuild else _read(storage, name)
    if table is not None:
        have = table.column("version").to_pylist()
        if len(have) == len(wanted) and set(have) == wanted:
            return table  # the common case: nothing published or removed since the last write
        table = table.filter(
            pc.is_in(table["version"], value_set=pa.array(sorted(wanted), pa.int64()))
        )
    have_set = set(table.column("version").to_pylist()) if table is not None else set()
    missing = sorted(wanted - have_set)
    paths = [(name, "versions", str(v), MANIFEST_FILE) for v in missing]
    contents = storage.read_many(paths)
    rows = []
    for path in paths:
        raw = contents[path]
        what = storage.display(*path)
        if raw is None:
            raise ArtifactError(
                f"{what}: expected the manifest of a complete version, found no file; the "
                "registry was modified by hand, run 'sea-dist registry gc' or restore the file"
            )
        rows.append(row_from_manifest(manifest_from_json(raw, what)))
    added = pa.Table.from_pylist(rows, schema=SCHEMA)
    table = pa.concat_tables([table, added]) if table is not None else added
    table = table.sort_by("version").replace_schema_metadata(SCHEMA.metadata)
    try:
        _write(storage, name, table)
    except OSError as error:  # a read-only registry still answers queries
        log.warning("cannot write index %s: %s", storage.display(name, INDEX_FILE), error)
    return table


def index_rows(
    storage: Storage, name: str, versions: list[int], rebuild: bool = False
) -> list[dict[str, Any]]:
    """Rows (plain dicts) of :func:`index_table`, oldest first."""
    return list(index_table(storage, name, versions, rebuild).to_pylist())


def find_sha256(
    storage: Storage, name: str, versions: list[int], prefix: str
) -> list[tuple[int, str]]:
    """``(version, sha256)`` of the versions of ``name`` whose content sha256 starts with prefix."""
    table = index_table(storage, name, versions)
    hits = table.filter(pc.starts_with(table["sha256"], prefix)).select(["version", "sha256"])
    return [(int(r["version"]), str(r["sha256"])) for r in hits.to_pylist()]
