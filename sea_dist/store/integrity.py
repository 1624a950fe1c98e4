"""Content digests of shards: recorded in the completion marker, checked on every read.

When a collector writes a shard it records, next to the completion flag, the sha256 of every
chunk it wrote (one per role and recorded layer: a chunk is ``(rows_per_shard, 1, d)``) and of
the shard's row ids, generations and token counts (:class:`ShardDigest`, a JSON string in the
``shard_digests`` array). A reader hashes the rows *as it reads them* (no second read) and
compares (:func:`read_checked`): a deleted chunk (which Zarr would silently read as the fill
value 0), a truncated or bit-flipped one, or one copied from another shard is refused with the
chunk named. Non-finite values are refused with the row and layer named, in any store.

Digests are over decoded values (little-endian bytes of the stored dtype, C order), not over the
compressed files: a reader never sees the compressed bytes, and a codec change that keeps the
values keeps the digests.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sea_dist.errors import StoreError, excerpt, expected_found
from sea_dist.store.spec import ACTIVATION_ARRAYS, DIGEST_ALGORITHM
from sea_dist.store.target import fresh_fs

HEX_DIGITS = 64


def redo_fix(url: str) -> str:
    """How to repair a damaged shard: mark it pending, then resume the collection."""
    return (
        f"run 'sea-dist store verify {url} --mark-pending', then re-run the same collect config "
        "to redo the damaged shards"
    )


def values_digest(values: np.ndarray) -> str:
    """sha256 (hex) of ``values``: its little-endian bytes in C order, in its own dtype."""
    array = np.ascontiguousarray(values)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return hashlib.sha256(array.data).hexdigest()  # no copy: the array is contiguous


def texts_digest(values: Sequence[str]) -> str:
    """sha256 (hex) of a list of strings (as a JSON array, ASCII-escaped)."""
    return hashlib.sha256(json.dumps([str(v) for v in values]).encode("ascii")).hexdigest()


def _is_hex(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == HEX_DIGITS
        and all(c in "0123456789abcdef" for c in value)
    )


@dataclass(frozen=True)
class ShardDigest:
    """What a shard held when its collector finished it (the content half of its marker).

    Attributes:
        shard: shard index.
        start, stop: its rows ``[start, stop)``.
        activations: role (``neutral``/``positive``/``negative``) -> one sha256 per recorded layer
            (in the order of the arrays' axis 1) of that chunk's ``(rows, d)`` values.
        row_ids, generated, n_tokens: sha256 of the shard's slice of those arrays.
    """

    shard: int
    start: int
    stop: int
    activations: Mapping[str, tuple[str, ...]]
    row_ids: str
    generated: str
    n_tokens: str

    @classmethod
    def of(
        cls,
        shard: int,
        start: int,
        activations: Mapping[str, np.ndarray],
        row_ids: Sequence[str],
        generated: Sequence[str],
        n_tokens: np.ndarray,
    ) -> ShardDigest:
        """Digest a shard's data exactly as it is written (``(rows, n_layers, d)`` arrays in the
        store's dtype, int64 token counts)."""
        rows = len(row_ids)
        return cls(
            shard=shard,
            start=start,
            stop=start + rows,
            activations={
                role: tuple(
                    values_digest(activations[role][:, index])
                    for index in range(activations[role].shape[1])
                )
                for role in ACTIVATION_ARRAYS
            },
            row_ids=texts_digest(row_ids),
            generated=texts_digest(generated),
            n_tokens=values_digest(np.asarray(n_tokens, dtype=np.int64)),
        )

    def to_json(self) -> str:
        """The marker text (docs/formats.md, section 1)."""
        record: dict[str, Any] = {
            "shard": self.shard,
            "rows": [self.start, self.stop],
            "algorithm": DIGEST_ALGORITHM,
        }
        record.update({role: list(self.activations[role]) for role in ACTIVATION_ARRAYS})
        record.update(row_ids=self.row_ids, generated=self.generated, n_tokens=self.n_tokens)
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, shard: int, rows: tuple[int, int], n_layers: int) -> ShardDigest:
        """Parse the marker text of shard ``shard`` (rows ``rows``, ``n_layers`` layers).

        Raises:
            ValueError: the text is not this shard's marker (what is wrong, in a few words).
        """
        try:
            record = json.loads(text)
        except ValueError:
            raise ValueError(f"not JSON ({excerpt(text, 40)})") from None
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        if record.get("algorithm") != DIGEST_ALGORITHM:
            raise ValueError(f"algorithm {excerpt(record.get('algorithm'), 40)}")
        if record.get("shard") != shard or record.get("rows") != list(rows):
            found = (record.get("shard"), record.get("rows"))
            raise ValueError(f"the marker of shard/rows {excerpt(found, 60)}")
        for role in ACTIVATION_ARRAYS:
            digests = record.get(role)
            if not isinstance(digests, list) or len(digests) != n_layers:
                raise ValueError(f"{role}: not {n_layers} digests")
            if not all(_is_hex(d) for d in digests):
                raise ValueError(f"{role}: not sha256 digests")
        if not all(_is_hex(record.get(key)) for key in ("row_ids", "generated", "n_tokens")):
            raise ValueError("row_ids/generated/n_tokens: not sha256 digests")
        return cls(
            shard=shard,
            start=rows[0],
            stop=rows[1],
            activations={role: tuple(record[role]) for role in ACTIVATION_ARRAYS},
            row_ids=record["row_ids"],
            generated=record["generated"],
            n_tokens=record["n_tokens"],
        )


@dataclass(frozen=True)
class LayerCheck:
    """What a reader of one recorded layer checks in the rows it reads (picklable: plain data).

    Attributes:
        url: store URL (for messages and the missing-chunk diagnosis).
        layer: model layer number (for messages).
        layer_index: the layer's position on the arrays' axis 1.
        rows_per_shard: rows per shard (= chunk rows).
        digests: role -> shard -> expected sha256 of that shard's chunk at this layer. A shard
            without one (a store written before digests) is checked for finiteness and for a
            missing chunk only.
    """

    url: str
    layer: int
    layer_index: int
    rows_per_shard: int
    digests: Mapping[str, Mapping[int, str]] = field(default_factory=dict)

    def restricted(self, ranges: Sequence[tuple[int, int]]) -> LayerCheck:
        """The same check holding only the digests of the shards ``ranges`` cover (small tasks)."""
        shards = {
            s
            for start, stop in ranges
            for s in range(start // self.rows_per_shard, -(-stop // self.rows_per_shard))
        }
        digests = {
            role: {s: d for s, d in by_shard.items() if s in shards}
            for role, by_shard in self.digests.items()
        }
        return LayerCheck(self.url, self.layer, self.layer_index, self.rows_per_shard, digests)


def _chunk_key(array: Any, role: str, shard: int, layer_index: int) -> str:
    try:
        key = str(array.metadata.encode_chunk_key((shard, layer_index, 0)))
    except (AttributeError, TypeError, ValueError):
        key = f"c/{shard}/{layer_index}/0"
    return f"{role}/{key}"


def _chunk_exists(url: str, key: str) -> bool:
    try:
        fs, root = fresh_fs(url)
        return bool(fs.exists(posixpath.join(root, key)))
    except (OSError, ValueError):
        return True  # cannot tell: say the content differs rather than guess "missing"


def _where(check: LayerCheck, role: str, shard: int, key: str) -> str:
    return f"store {excerpt(check.url)} shard {shard} {role} layer {check.layer} (chunk {key})"


def _row_id(url: str, row: int) -> str:
    import zarr

    try:
        value = zarr.open_array(store=url, path="row_ids", mode="r")[row]
        return f" (id {excerpt(str(value), 60)})"
    except Exception:  # noqa: BLE001 - a message detail; the row number is named anyway
        return ""


def read_checked(array: Any, role: str, check: LayerCheck, start: int, stop: int) -> np.ndarray:
    """Read rows ``[start, stop)`` of one layer (whole shards) and check them.

    Args:
        array: the opened Zarr array ``role`` of the store.
        role: ``neutral``, ``positive`` or ``negative``.
        check: the layer and the expected digests.
        start, stop: rows to read; ``start`` is a multiple of ``rows_per_shard``.

    Returns:
        (stop - start, d) values in the store's dtype.

    Raises:
        StoreError: a chunk that cannot be decoded, is missing, or differs from its digest, or a
            non-finite value (row and layer named). One line, with the fix.
    """
    per_shard = check.rows_per_shard
    try:
        values = np.asarray(array[start:stop, check.layer_index, :])
    except Exception:  # noqa: BLE001 - codecs raise anything on damaged bytes; pinpoint below
        for first in range(start, stop, per_shard):
            shard = first // per_shard
            try:
                array[first : min(first + per_shard, stop), check.layer_index, :]
            except Exception as error:  # noqa: BLE001 - named in the message
                key = _chunk_key(array, role, shard, check.layer_index)
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise StoreError(
                    f"{_where(check, role, shard, key)}: expected a readable chunk, found one "
                    f"that cannot be decoded ({type(error).__name__}: {excerpt(reason, 100)}); "
                    f"{redo_fix(check.url)}"
                ) from None
        raise  # every chunk decodes alone: not damage, a bug to see in full
    finite = np.isfinite(values)
    if not finite.all():
        offset, column = (int(i) for i in np.argwhere(~finite)[0])
        row = start + offset
        shard = row // per_shard
        expected = check.digests.get(role, {}).get(shard)
        first = shard * per_shard - start
        changed = expected is not None and expected != values_digest(
            values[first : first + per_shard]
        )
        cause = "the chunk differs from its recorded digest, so it changed after it was written"
        raise StoreError(
            expected_found(
                f"store {excerpt(check.url)} {role} row {row}{_row_id(check.url, row)} layer "
                f"{check.layer} (shard {shard}, column {column})",
                "finite activations",
                float(values[offset, column]),
                (f"{cause}; " if changed else "") + redo_fix(check.url),
            )
        )
    for first in range(start, stop, per_shard):
        shard = first // per_shard
        rows = values[first - start : min(first + per_shard, stop) - start]
        expected = check.digests.get(role, {}).get(shard)
        if expected is None:
            if rows.any():
                continue  # a store written before digests: a chunk of data is all we can tell
            key = _chunk_key(array, role, shard, check.layer_index)
            if not _chunk_exists(check.url, key):
                raise StoreError(
                    f"{_where(check, role, shard, key)}: expected a chunk file, found none (it "
                    f"would read as zeros); {redo_fix(check.url)}"
                )
            continue
        found = values_digest(rows)
        if found != expected:
            key = _chunk_key(array, role, shard, check.layer_index)
            what = (
                "no chunk file (it would read as zeros)"
                if not _chunk_exists(check.url, key)
                else f"sha256 {found[:16]}... (the chunk was changed after it was written)"
            )
            raise StoreError(
                f"{_where(check, role, shard, key)}: expected the content its completion marker "
                f"records (sha256 {expected[:16]}...), found {what}; {redo_fix(check.url)}"
            )
    return values
