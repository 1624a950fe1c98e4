"""What identifies an activation store (:class:`StoreSpec`) and what its attributes must hold.

The group attributes (``zarr.json``) are the store's description: the fit sizes its pass, picks
its layers and names its rows from them. An edited or damaged attribute (``rows_per_shard: 0``,
``layers`` of the wrong length, a string where a number belongs) must be refused on reading, with
the key named, before anything divides by it, indexes with it or fits the wrong thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from sea_dist.errors import StoreError, excerpt, expected_found
from sea_dist.format.seal import record_digest

SCHEMA_VERSION = 1
ACTIVATION_ARRAYS = ("neutral", "positive", "negative")
DIGEST_ALGORITHM = "sha256"
"""Value of the ``digests`` attribute of stores whose shard markers record content digests."""

# Attributes that must match for a run to resume into an existing store.
ATTRIBUTES_SEAL = "attributes_sha256"
"""Group attribute: sha256 of the other attributes' canonical JSON, written at creation."""
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

DTYPES = ("float32", "float16")
CODECS = ("zstd", "blosc", "gzip", "none")
TOKENS = ("last", "mean")
NEUTRAL_MODES = ("generate", "prompt")
MAX_INT = 2**63 - 1
FIX = "the store's zarr.json was edited or damaged: restore it, or re-collect with --overwrite"


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
    def from_attrs(cls, attrs: Mapping[str, Any], url: str = "") -> StoreSpec:
        """Rebuild a spec from group attributes, refusing any that cannot describe a store.

        Raises:
            StoreError: unknown schema version, a missing key, or a value of the wrong type or
                out of range (the first problem is named; :func:`attribute_problems` lists all).
        """
        problems = attribute_problems(attrs, url)
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise StoreError(problems[0] + more)
        values = {f.name: attrs[f.name] for f in fields(cls)}
        values["layers"] = tuple(values["layers"])
        return cls(**values)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _where(url: str) -> str:
    return f"store {excerpt(url)}" if url else "store"


def attribute_problems(attrs: Mapping[str, Any], url: str = "") -> list[str]:
    """Every way ``attrs`` fails to describe an activation store, one line each (empty: fine).

    Checks the schema version, that every key is present, each value's type and range, and the
    values that depend on each other (layers within the model, ``n_shards``). Agreement with the
    arrays themselves is :func:`sea_dist.store.layout.layout_problems`.
    """
    where = _where(url)
    version = attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        return [
            expected_found(
                f"{where} schema_version",
                str(SCHEMA_VERSION),
                version,
                "re-collect with this version of sea-dist",
            )
        ]
    missing = [f.name for f in fields(StoreSpec) if f.name not in attrs]
    if missing:
        return [
            f"{where} attributes: expected key {missing[0]!r}, found keys "
            f"{excerpt(sorted(attrs))}; the store is not a sea-dist activation store"
        ]
    problems: list[str] = []

    def bad(key: str, expected: str) -> None:
        problems.append(expected_found(f"{where} attribute {key}", expected, attrs.get(key), FIX))

    for key in ("model_id", "architecture", "tokenizer_fingerprint", "site"):
        if not isinstance(attrs[key], str) or not attrs[key]:
            bad(key, "a non-empty string")
    for key in ("model_revision", "demonstrations_fingerprint"):
        if not isinstance(attrs[key], str):
            bad(key, "a string")
    if attrs["site_template"] is not None and not isinstance(attrs["site_template"], str):
        bad("site_template", "a string or null")
    choices: tuple[str, ...]
    for key, choices in (
        ("token", TOKENS),
        ("neutral", NEUTRAL_MODES),
        ("dtype", DTYPES),
        ("codec", CODECS),
    ):
        if attrs[key] not in choices:
            bad(key, f"one of {', '.join(choices)}")
    for key, low in (
        ("d_model", 1),
        ("n_model_layers", 1),
        ("max_new_tokens", 0),
        ("n_rows", 1),
        ("rows_per_shard", 1),
    ):
        if not _is_int(attrs[key]) or not low <= attrs[key] <= MAX_INT:
            bad(key, f"an integer >= {low}")
    layers = attrs["layers"]
    n_model = attrs["n_model_layers"]
    if (
        not isinstance(layers, list)
        or not layers
        or not all(_is_int(layer) and layer >= 0 for layer in layers)
    ):
        bad("layers", "a non-empty list of decoder layer indices")
    elif len(set(layers)) != len(layers):
        bad("layers", "distinct layer indices")
    elif _is_int(n_model) and max(layers) >= n_model:
        bad("layers", f"indices below n_model_layers ({n_model})")
    n_rows, per_shard = attrs["n_rows"], attrs["rows_per_shard"]
    if _is_int(n_rows) and _is_int(per_shard) and n_rows >= 1 and per_shard >= 1:
        shards = -(-n_rows // per_shard)
        if "n_shards" in attrs and attrs["n_shards"] != shards:
            bad("n_shards", f"{shards} (n_rows {n_rows} / rows_per_shard {per_shard})")
    if "digests" in attrs and attrs["digests"] != DIGEST_ALGORITHM:
        bad("digests", repr(DIGEST_ALGORITHM))
    return problems


def seal_problems(attrs: Mapping[str, Any], url: str = "") -> list[str]:
    """The attribute seal's verdict: empty when unsealed (older stores) or intact.

    Checked after :func:`attribute_problems` and the arrays' layout, so a value that is plainly
    wrong is named as such; the seal catches what no other check can (a changed character in
    the model revision or the demonstrations fingerprint).
    """
    sealed = attrs.get(ATTRIBUTES_SEAL)
    if sealed is None or sealed == record_digest(attrs, ATTRIBUTES_SEAL):
        return []
    return [
        expected_found(
            f"{_where(url)} attributes (zarr.json)",
            f"content with sha256 {excerpt(sealed)} (sealed at creation)",
            "other content",
            "they were changed after the store was created: re-collect with --overwrite",
        )
    ]
