"""The activation store: a Zarr v3 group of (N, n_layers, d) arrays written shard by shard.

Layout (docs/formats.md): arrays ``neutral``, ``positive``, ``negative`` chunked
(rows_per_shard, 1, d), per-row ``row_ids``/``generated``/``n_tokens`` and a ``shard_done`` marker
array with one chunk per shard. Each shard is written by exactly one writer and its marker is
written last, so a shard whose marker is 0 is simply redone after a failure.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from sea_dist.errors import StoreError
from sea_dist.store.target import check_store_target

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ACTIVATION_ARRAYS = ("neutral", "positive", "negative")

# Attributes that must match for a run to resume into an existing store.
IDENTITY_KEYS = (
    "model_id",
    "model_revision",
    "architecture",
    "d_model",
    "tokenizer_fingerprint",
    "site",
    "site_template",
    "layers",
    "token",
    "neutral",
    "max_new_tokens",
    "demonstrations_fingerprint",
    "n_rows",
    "rows_per_shard",
    "dtype",
)


@dataclass(frozen=True)
class StoreSpec:
    """Everything that identifies an activation store (its group attributes minus bookkeeping)."""

    model_id: str
    model_revision: str
    architecture: str
    d_model: int
    n_model_layers: int
    tokenizer_fingerprint: str
    site: str
    site_template: str | None
    layers: tuple[int, ...]
    token: str
    neutral: str
    max_new_tokens: int
    demonstrations_fingerprint: str
    n_rows: int
    rows_per_shard: int
    dtype: str = "float32"
    codec: str = "zstd"

    @property
    def n_shards(self) -> int:
        """Number of shards (the last one may be short)."""
        return -(-self.n_rows // self.rows_per_shard)

    def shard_rows(self, shard: int) -> tuple[int, int]:
        """Row range ``[start, stop)`` of shard ``shard``."""
        if not 0 <= shard < self.n_shards:
            raise StoreError(f"shard: expected 0..{self.n_shards - 1}, found {shard}")
        start = shard * self.rows_per_shard
        return start, min(start + self.rows_per_shard, self.n_rows)

    def to_attrs(self) -> dict[str, Any]:
        """JSON attributes for the Zarr group."""
        attrs = asdict(self)
        attrs["layers"] = list(self.layers)
        attrs["n_shards"] = self.n_shards
        attrs["schema_version"] = SCHEMA_VERSION
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> StoreSpec:
        """Rebuild a spec from group attributes; refuses unknown schema versions."""
        version = attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"store schema_version: expected {SCHEMA_VERSION}, found {version!r}; "
                "re-collect with this version of sea-dist"
            )
        try:
            values = {f.name: attrs[f.name] for f in fields(cls)}
        except KeyError as missing:
            raise StoreError(
                f"store attributes: expected key {missing}, found keys {sorted(attrs)}; "
                "the store is not a sea-dist activation store"
            ) from None
        values["layers"] = tuple(values["layers"])
        return cls(**values)


def _compressors(codec: str) -> list[Any] | None:
    if codec == "zstd":
        return [ZstdCodec(level=3)]
    if codec == "blosc":
        return [BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")]
    if codec == "gzip":
        return [GzipCodec(level=5)]
    if codec == "none":
        return None
    raise StoreError(f"store codec: expected zstd, blosc, gzip or none, found {codec!r}")


class ActivationStore:
    """A handle on one activation store. Open with :meth:`create` or :meth:`open`."""

    def __init__(self, url: str, group: zarr.Group, spec: StoreSpec) -> None:
        self.url = url
        self.group = group
        self.spec = spec

    @classmethod
    def exists(cls, url: str) -> bool:
        """Whether a Zarr group exists at ``url``."""
        try:
            zarr.open_group(url, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
            return False
        return True

    @classmethod
    def open(cls, url: str, mode: str = "r") -> ActivationStore:
        """Open an existing store (``mode="r"`` to read, ``"r+"`` to write shards)."""
        try:
            group = zarr.open_group(url, mode=mode)  # type: ignore[arg-type]
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
            raise StoreError(
                f"store: expected a sea-dist activation store at {url!r}, found nothing; "
                "run 'sea-dist collect' first"
            ) from None
        return cls(url, group, StoreSpec.from_attrs(dict(group.attrs)))

    @classmethod
    def create(cls, url: str, spec: StoreSpec, overwrite: bool = False) -> ActivationStore:
        """Create the store for ``spec``, or reopen a compatible one to resume.

        Raises:
            StoreError: a store exists at ``url`` with a different identity and ``overwrite`` is
                false (runs are never mixed silently); ``url`` holds anything but a store (a
                file, other files), with or without ``overwrite`` (nothing is ever deleted that
                is not a store).
        """
        # Before anything else: mode="w" below deletes whatever is at url.
        check_store_target(url, overwrite)
        if not overwrite and cls.exists(url):  # a damaged store may still be replaced
            existing = cls.open(url, mode="r+")
            theirs, ours = existing.spec.to_attrs(), spec.to_attrs()
            diffs = [k for k in IDENTITY_KEYS if theirs.get(k) != ours.get(k)]
            if diffs:
                key = diffs[0]
                raise StoreError(
                    f"store {url!r} {key}: expected {ours.get(key)!r} (this run), "
                    f"found {theirs.get(key)!r} (existing store; differing: {', '.join(diffs)}); "
                    "use another store URL or --overwrite to replace it"
                )
            log.info("resuming store %s: %d/%d shards done", url, *existing.progress())
            return existing
        try:
            return cls._create(url, spec)
        except OSError as error:
            raise StoreError(
                f"store {url!r}: expected a writable location, found {type(error).__name__}: "
                f"{error.strerror or error}; choose another store URL or free space"
            ) from None

    @classmethod
    def _create(cls, url: str, spec: StoreSpec) -> ActivationStore:
        group = zarr.open_group(url, mode="w")
        attrs = spec.to_attrs()
        attrs["created_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        group.attrs.update(attrs)
        n, shard = spec.n_rows, spec.rows_per_shard
        compressors = _compressors(spec.codec)
        for name in ACTIVATION_ARRAYS:
            group.create_array(
                name,
                shape=(n, len(spec.layers), spec.d_model),
                chunks=(shard, 1, spec.d_model),
                dtype=spec.dtype,
                compressors=compressors,
                fill_value=0,
            )
        group.create_array("row_ids", shape=(n,), chunks=(shard,), dtype=str)
        group.create_array("generated", shape=(n,), chunks=(shard,), dtype=str)
        group.create_array("n_tokens", shape=(n,), chunks=(shard,), dtype="int64", fill_value=0)
        group.create_array(
            "shard_done", shape=(spec.n_shards,), chunks=(1,), dtype="uint8", fill_value=0
        )
        log.info("created store %s (%d rows, %d shards)", url, n, spec.n_shards)
        return cls(url, group, spec)

    def array(self, name: str) -> zarr.Array:
        """The Zarr array ``name`` of this store."""
        array = self.group.get(name)
        if not isinstance(array, zarr.Array):
            raise StoreError(
                f"store array: expected one of {sorted(self.group.array_keys())}, found {name!r}"
            )
        return array

    def done_shards(self) -> set[int]:
        """Shards whose completion marker is set."""
        marks = np.asarray(self.array("shard_done")[:])
        return {int(i) for i in np.flatnonzero(marks)}

    def pending_shards(self) -> list[int]:
        """Shards still to do, in order."""
        done = self.done_shards()
        return [s for s in range(self.spec.n_shards) if s not in done]

    def progress(self) -> tuple[int, int]:
        """``(done, total)`` shard counts."""
        return len(self.done_shards()), self.spec.n_shards

    @property
    def is_complete(self) -> bool:
        """Whether every shard is marked done."""
        return not self.pending_shards()

    def write_shard(
        self,
        shard: int,
        activations: Mapping[str, np.ndarray],
        row_ids: list[str],
        generated: list[str],
        n_tokens: np.ndarray,
    ) -> None:
        """Write one shard's rows, then its completion marker.

        Args:
            shard: shard index.
            activations: ``neutral``/``positive``/``negative`` -> (rows, n_layers, d) arrays.
            row_ids: demonstration ids of the rows.
            generated: neutral generations ('' in prompt mode).
            n_tokens: (rows,) int64 tokens processed per row.
        """
        start, stop = self.spec.shard_rows(shard)
        rows = stop - start
        expected = (rows, len(self.spec.layers), self.spec.d_model)
        for name in ACTIVATION_ARRAYS:
            array = activations[name]
            if array.shape != expected:
                raise StoreError(
                    f"shard {shard} {name}: expected shape {expected}, found {array.shape}"
                )
        if len(row_ids) != rows or len(generated) != rows or len(n_tokens) != rows:
            raise StoreError(f"shard {shard}: expected {rows} row ids/generations/token counts")
        try:
            for name in ACTIVATION_ARRAYS:
                array = activations[name].astype(self.spec.dtype, copy=False)
                self.array(name)[start:stop] = array
            self.array("row_ids")[start:stop] = np.asarray(row_ids, dtype=str)
            self.array("generated")[start:stop] = np.asarray(generated, dtype=str)
            self.array("n_tokens")[start:stop] = np.asarray(n_tokens, dtype=np.int64)
            # The marker goes last: a crash before this line leaves the shard pending.
            self.array("shard_done")[shard] = 1
        except OSError as error:
            raise StoreError(
                f"store {self.url!r} shard {shard}: expected a writable store, found "
                f"{type(error).__name__}: {error.strerror or error}; free space and re-run to "
                "resume (the shard stays pending)"
            ) from None

    def require_complete(self) -> None:
        """Raise unless every shard is done (fitting an incomplete store would be wrong)."""
        pending = self.pending_shards()
        if pending:
            raise StoreError(
                f"store {self.url!r}: expected all {self.spec.n_shards} shards done, found "
                f"{len(pending)} pending (first {pending[0]}); re-run collection to resume it"
            )

    def read(self, name: str, rows: slice | None = None) -> np.ndarray:
        """Read an array (or a row slice of it) into memory."""
        return np.asarray(self.array(name)[rows if rows is not None else slice(None)])

    def iter_shards(self) -> Iterator[tuple[int, int, int]]:
        """Yield ``(shard, start, stop)`` for every shard."""
        for shard in range(self.spec.n_shards):
            yield (shard, *self.spec.shard_rows(shard))

    def attrs(self) -> dict[str, Any]:
        """All group attributes (provenance)."""
        return dict(self.group.attrs)
