"""The fit record, ``fit.json``: parsed and checked in one place (docs/formats.md section 2).

The fit's ``centre`` option (:class:`sea_dist.config.FitConfig`) is written as the key
``centred``; that on-disk name is kept so every fit output ever written still loads, and this
module is the one place that reads it (:attr:`FitRecord.centred`). Fit outputs written before a
key existed read its default: not centred, ``l2`` combine (or the config's), the linear map.

Only the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sea_dist.errors import ArtifactError, expected_found
from sea_dist.format.files import FIT_FILE

FIT_SCHEMA_VERSION = 1
CENTRED_KEY = "centred"
"""The key of ``fit.json`` (and of manifests) holding the fit option ``centre``."""
MODEL_FIELDS: tuple[tuple[str, type], ...] = (
    ("model_id", str),
    ("architecture", str),
    ("d_model", int),
    ("n_model_layers", int),
    ("site", str),
)
"""The store attributes a fit record must carry about its model, with their types."""
LINEAR_MAP: dict[str, Any] = {"name": "linear", "scale": 1.0}


def _fail(what: str, expected: str, found: object, fix: str = "") -> ArtifactError:
    return ArtifactError(expected_found(what, expected, found, fix))


@dataclass(frozen=True)
class FitRecord:
    """A checked ``fit.json``.

    Attributes:
        data: the JSON object as written (what its seal pins; kept for provenance).
        store_url: the activation store it was fitted from.
        store_attrs: the store's attributes (model, site, fingerprints...).
        config: the fit settings used.
        combine: ``l2`` or ``average``.
        centred: the neutral mean was subtracted (``layers.L.mean`` tensors exist).
        feature_map: ``{"name", "scale"}``.
        layers: the per-layer entries (``layer``, ``k_pos``, ``k_neg`` integers, energies...).
        svd_path: the SVD path of each layer, by decimal layer index.
        created_at: when the fit was written (ISO-8601), if recorded.
    """

    data: dict[str, Any]
    store_url: str | None
    store_attrs: dict[str, Any]
    config: dict[str, Any]
    combine: str
    centred: bool
    feature_map: dict[str, Any]
    layers: tuple[dict[str, Any], ...]
    svd_path: dict[str, Any]
    created_at: str | None

    @property
    def layer_indices(self) -> tuple[int, ...]:
        """The fitted decoder layers, in record order."""
        return tuple(int(entry["layer"]) for entry in self.layers)

    def edit_fields(self) -> dict[str, Any]:
        """The manifest-style fields an edit is built from (model, site, SEA settings)."""
        attrs = self.store_attrs
        return {
            "model_id": attrs["model_id"],
            "architecture": attrs["architecture"],
            "d_model": attrs["d_model"],
            "n_model_layers": attrs["n_model_layers"],
            "site": attrs["site"],
            "site_template": attrs.get("site_template"),
            "combine": self.combine,
            "feature_map": dict(self.feature_map),
            CENTRED_KEY: self.centred,
            "layers": list(self.layers),
        }


def _check_layers(entries: Any, n_model_layers: int, what: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(entries, list) or not entries:
        raise _fail(f"{what}: layers", "a non-empty list of per-layer results", entries)
    seen: set[int] = set()
    for entry in entries:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool)
            for k in ("layer", "k_pos", "k_neg")
        ):
            raise _fail(f"{what}: layers entry", "layer, k_pos and k_neg integers", entry)
        layer = entry["layer"]
        if layer in seen or not 0 <= layer < n_model_layers:
            raise _fail(f"{what}: layers", f"distinct indices in [0, {n_model_layers})", layer)
        seen.add(layer)
    return tuple(entries)


def fit_record_from_dict(data: Any, what: str, fix: str = "re-run 'sea-dist fit'") -> FitRecord:
    """Check a parsed ``fit.json`` and return it as a :class:`FitRecord`.

    Args:
        data: the parsed JSON.
        what: the fit output, for messages.
        fix: what to do about an unknown schema version.

    Raises:
        ArtifactError: not an object, an unknown schema version, missing or mistyped store
            attributes, or malformed per-layer entries; one line naming the key.
    """
    if not isinstance(data, dict):
        raise _fail(f"{what}: {FIT_FILE}", "a JSON object", type(data).__name__)
    if data.get("schema_version") != FIT_SCHEMA_VERSION:
        raise _fail(
            f"{what}: {FIT_FILE} schema_version",
            str(FIT_SCHEMA_VERSION),
            data.get("schema_version"),
            fix,
        )
    store = data.get("store")
    if not isinstance(store, dict) or not isinstance(store.get("attrs"), dict):
        raise _fail(f"{what}: store", "an object with 'attrs'", store)
    attrs = store["attrs"]
    for key, kind in MODEL_FIELDS:
        value = attrs.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _fail(f"{what}: store.attrs.{key}", kind.__name__, value)
    config = data.get("config") or {}
    feature_map = data.get("feature_map") or LINEAR_MAP
    svd_path = data.get("svd_path") or {}
    for key, value in (("config", config), ("feature_map", feature_map), ("svd_path", svd_path)):
        if not isinstance(value, Mapping):
            raise _fail(f"{what}: {key}", "an object", value)
    created_at = data.get("created_at")
    return FitRecord(
        data=data,
        store_url=store.get("url"),
        store_attrs=dict(attrs),
        config=dict(config),
        combine=str(data.get("combine", config.get("combine", "l2"))),
        centred=bool(data.get(CENTRED_KEY, False)),
        feature_map=dict(feature_map),
        layers=_check_layers(data.get("layers"), attrs["n_model_layers"], what),
        svd_path=dict(svd_path),
        created_at=created_at if isinstance(created_at, str) else None,
    )


def fit_record_from_json(raw: bytes, what: str, fix: str = "re-run 'sea-dist fit'") -> FitRecord:
    """Parse ``fit.json`` bytes (see :func:`fit_record_from_dict`).

    Raises:
        ArtifactError: not UTF-8 JSON, or anything :func:`fit_record_from_dict` refuses.
    """
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(f"{what}: {FIT_FILE}", "valid JSON", str(error)) from None
    return fit_record_from_dict(data, what, fix)
