"""The activation store: a Zarr v3 group of (N, n_layers, d) arrays written shard by shard.

Layout (docs/formats.md): arrays ``neutral``, ``positive``, ``negative`` chunked
(rows_per_shard, 1, d), per-row ``row_ids``/``generated``/``n_tokens``, and per shard a
completion marker: its content digests (``shard_digests``, one JSON string per shard) and its
flag (``shard_done``), written after the data, flag last. Each shard is written by exactly one
writer, so a shard whose marker is missing, zero or damaged is simply redone after a failure, and
a reader checks every chunk against the digests (:mod:`sea_dist.store.integrity`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec
from zarr.core.array_spec import ArrayConfig

from sea_dist.errors import StoreError, excerpt, expected_found
from sea_dist.format.seal import record_digest
from sea_dist.store.integrity import LayerCheck, ShardDigest
from sea_dist.store.layout import DIGEST_ARRAY, MARKER_ARRAY, layout_problems
from sea_dist.store.markers import ShardMarkers, read_markers
from sea_dist.store.opening import open_group
from sea_dist.store.spec import (
    ACTIVATION_ARRAYS,
    ATTRIBUTES_SEAL,
    DIGEST_ALGORITHM,
    IDENTITY_KEYS,
    SCHEMA_VERSION,
    StoreSpec,
    seal_problems,
)
from sea_dist.store.target import check_store_target

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVATION_ARRAYS",
    "SCHEMA_VERSION",
    "ActivationStore",
    "ShardMarkers",
    "StoreSpec",
]

# Every chunk of a written shard exists as a file, even an all-zero one, so that a missing file
# is always damage (Zarr's default skips chunks equal to the fill value).
_WRITE_EVERY_CHUNK = ArrayConfig(order="C", write_empty_chunks=True)


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
        """Whether a Zarr group exists at ``url`` (a damaged ``zarr.json`` counts as one)."""
        try:
            zarr.open_group(url, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
            return False
        except (ValueError, TypeError):
            return True
        return True

    @classmethod
    def open(cls, url: str, mode: str = "r") -> ActivationStore:
        """Open an existing store (``mode="r"`` to read, ``"r+"`` to write shards).

        Raises:
            StoreError: nothing at ``url``, a damaged ``zarr.json``, attributes that cannot
                describe a store, or arrays that disagree with them (the first problem named;
                ``sea-dist store verify`` lists them all).
        """
        group = open_group(url, mode)
        store = cls(url, group, StoreSpec.from_attrs(dict(group.attrs), url))
        problems = layout_problems(group, store.spec, url, store.has_digests)
        problems += seal_problems(dict(group.attrs), url)
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise StoreError(problems[0] + more)
        return store

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
            existing._add_digest_array()
            markers = existing.markers()
            if markers.damaged:
                log.warning(
                    "store %s: %d shards have a damaged completion marker and are redone "
                    "(first %d: %s)",
                    url,
                    len(markers.damaged),
                    *next(iter(sorted(markers.damaged.items()))),
                )
            log.info("resuming store %s: %d/%d shards done", url, len(markers.done), spec.n_shards)
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
        attrs["digests"] = DIGEST_ALGORITHM
        # Sealed: a changed character in an identity string (model revision, demonstrations
        # fingerprint) would otherwise be carried into the fit and the artifact unnoticed.
        attrs[ATTRIBUTES_SEAL] = record_digest(attrs, ATTRIBUTES_SEAL)
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
        group.create_array(DIGEST_ARRAY, shape=(spec.n_shards,), chunks=(1,), dtype=str)
        group.create_array(
            MARKER_ARRAY, shape=(spec.n_shards,), chunks=(1,), dtype="uint8", fill_value=0
        )
        log.debug("created store %s (%d rows, %d shards)", url, n, spec.n_shards)
        return cls(url, group, spec)

    def _add_digest_array(self) -> None:
        """Give a store written before digests a digest array, so shards written from now on
        record theirs (the shards already done stay unchecked)."""
        if self.group.get(DIGEST_ARRAY) is None:
            log.warning(
                "store %s was written before shard digests: shards written now record them, "
                "the %d already done cannot be checked",
                self.url,
                len(self.done_shards()),
            )
            n_shards = self.spec.n_shards
            try:
                self.group.create_array(DIGEST_ARRAY, shape=(n_shards,), chunks=(1,), dtype=str)
            except OSError as error:
                raise StoreError(
                    f"store {self.url!r}: expected a writable store to resume, found "
                    f"{type(error).__name__}: {error.strerror or error}; free space or fix "
                    "permissions and re-run"
                ) from None

    @property
    def has_digests(self) -> bool:
        """Whether this store was created with digests (every done shard must have one)."""
        return self.group.attrs.get("digests") == DIGEST_ALGORITHM

    def array(self, name: str) -> zarr.Array:
        """The Zarr array ``name`` of this store."""
        array = self.group.get(name)
        if not isinstance(array, zarr.Array):
            raise StoreError(
                f"store array: expected one of {sorted(self.group.array_keys())}, found {name!r}"
            )
        return array

    def markers(self) -> ShardMarkers:
        """Read every shard's completion marker (flag and digests)."""
        return read_markers(self.group, self.spec, self.has_digests)

    def done_shards(self) -> set[int]:
        """Shards whose completion marker is complete."""
        return set(self.markers().done)

    def pending_shards(self) -> list[int]:
        """Shards still to do, in order (a damaged marker counts as none)."""
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
        """Write one shard's rows, then its completion marker (digests, then flag).

        Args:
            shard: shard index.
            activations: ``neutral``/``positive``/``negative`` -> (rows, n_layers, d) arrays.
            row_ids: demonstration ids of the rows.
            generated: neutral generations ('' in prompt mode).
            n_tokens: (rows,) int64 tokens processed per row.

        Raises:
            StoreError: wrong shapes, non-finite activations (row and layer named), or a write
                failure (the shard stays pending).
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
        cast = {
            name: np.ascontiguousarray(activations[name], dtype=self.spec.dtype)
            for name in ACTIVATION_ARRAYS
        }
        self._refuse_non_finite(shard, cast, row_ids)
        ids = np.asarray(row_ids, dtype=str)
        texts = np.asarray(generated, dtype=str)
        tokens = np.asarray(n_tokens, dtype=np.int64)
        # Digest exactly what is written (numpy drops trailing NULs of strings, for example).
        digest = ShardDigest.of(shard, start, cast, ids.tolist(), texts.tolist(), tokens)
        digest_array = self.group.get(DIGEST_ARRAY)
        try:
            for name in ACTIVATION_ARRAYS:
                self.array(name).with_config(_WRITE_EVERY_CHUNK)[start:stop] = cast[name]
            self.array("row_ids")[start:stop] = ids
            self.array("generated")[start:stop] = texts
            self.array("n_tokens")[start:stop] = tokens
            # The marker goes last, flag after digests: a crash before the flag leaves the
            # shard pending, and a flag is never set without the digests it vouches for.
            if isinstance(digest_array, zarr.Array):
                digest_array[shard] = digest.to_json()
            self.array(MARKER_ARRAY)[shard] = 1
        except OSError as error:
            raise StoreError(
                f"store {self.url!r} shard {shard}: expected a writable store, found "
                f"{type(error).__name__}: {error.strerror or error}; free space and re-run to "
                "resume (the shard stays pending)"
            ) from None

    def _refuse_non_finite(
        self, shard: int, cast: Mapping[str, np.ndarray], row_ids: list[str]
    ) -> None:
        for name in ACTIVATION_ARRAYS:
            finite = np.isfinite(cast[name])
            if finite.all():
                continue
            offset, index, _ = (int(i) for i in np.argwhere(~finite)[0])
            value = float(cast[name][offset, index][~finite[offset, index]][0])
            raise StoreError(
                expected_found(
                    f"shard {shard} {name} row {self.spec.shard_rows(shard)[0] + offset} "
                    f"(id {excerpt(row_ids[offset], 60)}) layer {self.spec.layers[index]}",
                    f"finite activations in {self.spec.dtype}",
                    value,
                    "the model produced non-finite values (or overflowed the store dtype): "
                    "check model.dtype, store.dtype and that demonstration",
                )
            )

    def require_complete(self) -> ShardMarkers:
        """Raise unless every shard is done (fitting an incomplete store would be wrong).

        Returns:
            The markers read (digests to check the reads against).
        """
        markers = self.markers()
        pending = [s for s in range(self.spec.n_shards) if s not in markers.done]
        if pending:
            damaged = [s for s in pending if s in markers.damaged]
            detail = ""
            if damaged:
                detail = (
                    f"; {len(damaged)} of them with a damaged marker (shard {damaged[0]}: "
                    f"{markers.damaged[damaged[0]]})"
                )
            raise StoreError(
                f"store {self.url!r}: expected all {self.spec.n_shards} shards done, found "
                f"{len(pending)} pending (first {pending[0]}){detail}; re-run collection to "
                "resume it"
            )
        return markers

    def layer_checks(self, markers: ShardMarkers | None = None) -> dict[int, LayerCheck]:
        """Model layer number -> what a reader of that layer checks (digests per role and shard)."""
        markers = markers or self.markers()
        checks = {}
        for index, layer in enumerate(self.spec.layers):
            digests = {
                role: {s: d.activations[role][index] for s, d in markers.digests.items()}
                for role in ACTIVATION_ARRAYS
            }
            checks[layer] = LayerCheck(self.url, layer, index, self.spec.rows_per_shard, digests)
        return checks

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
