"""The artifact manifest: provenance of one published version, as a frozen dataclass and JSON.

``manifest.json`` (schema version 1) holds everything needed to trust and reuse a projection
artifact without the run that made it: the model it was fitted on, the site and layers, the SEA
settings, per-layer k and captured energy, fingerprints of the activation store and of the
demonstrations, the resolved config, the code version, and the sha256 of
``projections.safetensors``. Readers refuse schema versions they do not know.

Two optional keys say how to apply the projections and what they did on held-out data:
``recipe`` (:class:`sea_dist.format.recipe.EditRecipe`) and ``evaluation``
(:class:`sea_dist.format.recipe.EvaluationRecord`, which the promotion gate reads). Manifests
published before them have neither and load unchanged (both None).

Only the standard library. The writer's helpers (code version, timestamps, the store
fingerprint) are in :mod:`sea_dist.registry.manifest`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sea_dist.errors import ArtifactError, expected_found
from sea_dist.format.files import PROJECTIONS_FILE
from sea_dist.format.recipe import EditRecipe, EvaluationRecord

MANIFEST_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class LayerSummary:
    """Per-layer result of the fit: kept ranks and captured energy ratios."""

    layer: int
    k_pos: int
    k_neg: int
    energy_pos: float
    energy_neg: float
    total_energy_pos: float | None = None
    total_energy_neg: float | None = None
    signature: float | None = None
    svd_path: str | None = None


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json``. ``version`` is None only while an artifact is staged."""

    name: str
    version: int | None
    sha256: str
    """Hex sha256 of ``projections.safetensors``."""
    size_bytes: int
    model_id: str
    model_revision: str | None
    architecture: str
    d_model: int
    n_model_layers: int
    site: str
    site_template: str | None
    layers: tuple[int, ...]
    combine: str
    centred: bool
    feature_map: dict[str, Any]
    """``{"name": "linear|tanh|elu|sqexp", "scale": float}``."""
    positive_energy: float | None
    """K+ (None when a fixed k was used)."""
    negative_energy: float | None
    """K-."""
    per_layer: tuple[LayerSummary, ...]
    store_fingerprint: str
    demonstrations_fingerprint: str
    code_version: str
    created_at: str
    tokenizer_fingerprint: str | None = None
    token: str | None = None
    neutral: str | None = None
    fixed_k: int | None = None
    n_rows: int | None = None
    store_url: str | None = None
    store_attrs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved configuration of the run (fit settings at least; the full config if known)."""
    fitted_at: str | None = None
    input_fingerprint: str | None = None
    """sha256 of the run's inputs (model revision, demonstrations, collect/fit settings); the
    scheduler skips a refit whose inputs equal the latest version's."""
    recipe: dict[str, Any] | None = None
    """How to apply the projections (``EditRecipe.to_dict()``), or None (published before
    recipes, or without one)."""
    evaluation: dict[str, Any] | None = None
    """What the recipe did on held-out data (``EvaluationRecord.to_dict()``), or None
    (unevaluated: the promotion gate refuses it)."""
    schema_version: int = MANIFEST_SCHEMA_VERSION

    @property
    def ref(self) -> str:
        """``name@version`` (or ``name@staged`` before a version is claimed)."""
        return f"{self.name}@{self.version if self.version is not None else 'staged'}"

    def edit_recipe(self) -> EditRecipe | None:
        """The parsed :attr:`recipe` (None when the manifest has none)."""
        return None if self.recipe is None else EditRecipe.from_dict(self.recipe)

    def evaluation_record(self) -> EvaluationRecord | None:
        """The parsed :attr:`evaluation` (None when the version is unevaluated)."""
        return None if self.evaluation is None else EvaluationRecord.from_dict(self.evaluation)

    def layer(self, index: int) -> LayerSummary:
        """Summary of decoder layer ``index``. Raises ArtifactError when it is not fitted."""
        for summary in self.per_layer:
            if summary.layer == index:
                return summary
        raise ArtifactError(
            expected_found(f"{self.ref}: layer", f"one of {list(self.layers)}", index)
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, in the documented key layout."""
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "files": {PROJECTIONS_FILE: {"sha256": self.sha256, "size_bytes": self.size_bytes}},
            "model_id": self.model_id,
            "model_revision": self.model_revision,
            "architecture": self.architecture,
            "d_model": self.d_model,
            "n_model_layers": self.n_model_layers,
            "tokenizer_fingerprint": self.tokenizer_fingerprint,
            "site": self.site,
            "site_template": self.site_template,
            "layers": list(self.layers),
            "token": self.token,
            "neutral": self.neutral,
            "combine": self.combine,
            "centred": self.centred,
            "feature_map": dict(self.feature_map),
            "positive_energy": self.positive_energy,
            "negative_energy": self.negative_energy,
            "fixed_k": self.fixed_k,
            "per_layer": [vars(s).copy() for s in self.per_layer],
            "store": {
                "url": self.store_url,
                "fingerprint": self.store_fingerprint,
                "n_rows": self.n_rows,
                "attrs": self.store_attrs,
            },
            "demonstrations_fingerprint": self.demonstrations_fingerprint,
            "input_fingerprint": self.input_fingerprint,
            "config": self.config,
            "code_version": self.code_version,
            "created_at": self.created_at,
            "fitted_at": self.fitted_at,
            "recipe": self.recipe,
            "evaluation": self.evaluation,
        }

    def to_json(self) -> bytes:
        """UTF-8 JSON bytes as written to ``manifest.json``."""
        return (json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n").encode("utf-8")


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, float):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ArtifactError(expected_found(f"{what}: {key}", names, value))
    return value


def _where(error: ArtifactError, what: str) -> ArtifactError:
    """``error`` prefixed with ``what`` unless its message already starts with it."""
    text = str(error)
    return error if text.startswith(what) else ArtifactError(f"{what}: {text}")


def parse_recipe(data: Any, what: str) -> EditRecipe:
    """:meth:`EditRecipe.from_dict`, every error naming ``what`` (file and field)."""
    try:
        return EditRecipe.from_dict(data, what)
    except ArtifactError as error:
        raise _where(error, what) from None


def parse_evaluation(data: Any, what: str) -> EvaluationRecord:
    """:meth:`EvaluationRecord.from_dict`, every error naming ``what`` (file and field)."""
    try:
        return EvaluationRecord.from_dict(data, what)
    except ArtifactError as error:
        raise _where(error, what) from None


def manifest_from_dict(data: Any, what: str = "manifest.json") -> Manifest:
    """Parse and validate manifest data.

    Raises:
        ArtifactError: not an object, an unknown schema version, or a missing/mistyped field.
    """
    if not isinstance(data, dict):
        raise ArtifactError(expected_found(what, "a JSON object", type(data).__name__))
    if data.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        raise ArtifactError(
            expected_found(
                f"{what}: schema_version",
                str(MANIFEST_SCHEMA_VERSION),
                data.get("schema_version"),
                "upgrade sea-dist to read newer artifacts",
            )
        )
    per_layer = []
    for item in _require(data, "per_layer", list, what):
        try:
            per_layer.append(LayerSummary(**item))
        except TypeError:
            raise ArtifactError(
                expected_found(
                    f"{what}: per_layer entry", "layer, k_pos, k_neg, energy_pos, energy_neg", item
                )
            ) from None
    store = data.get("store") or {}
    recipe, evaluation = data.get("recipe"), data.get("evaluation")
    if recipe is not None:  # parse to validate; keep the JSON as written (what the hash pins)
        parse_recipe(recipe, f"{what}: recipe")
    if evaluation is not None:
        parse_evaluation(evaluation, f"{what}: evaluation")
    version = data.get("version")
    if version is not None and (not isinstance(version, int) or version < 1):
        raise ArtifactError(expected_found(f"{what}: version", "an integer >= 1 or null", version))
    return Manifest(
        name=_require(data, "name", str, what),
        version=version,
        sha256=_require(data, "sha256", str, what),
        size_bytes=_require(data, "size_bytes", int, what),
        model_id=_require(data, "model_id", str, what),
        model_revision=data.get("model_revision"),
        architecture=_require(data, "architecture", str, what),
        d_model=_require(data, "d_model", int, what),
        n_model_layers=_require(data, "n_model_layers", int, what),
        site=_require(data, "site", str, what),
        site_template=data.get("site_template"),
        layers=tuple(_require(data, "layers", list, what)),
        combine=_require(data, "combine", str, what),
        centred=bool(data.get("centred", False)),
        feature_map=_require(data, "feature_map", dict, what),
        positive_energy=data.get("positive_energy"),
        negative_energy=data.get("negative_energy"),
        per_layer=tuple(per_layer),
        store_fingerprint=_require(data, "store", dict, what).get("fingerprint") or "",
        demonstrations_fingerprint=_require(data, "demonstrations_fingerprint", str, what),
        code_version=_require(data, "code_version", str, what),
        created_at=_require(data, "created_at", str, what),
        tokenizer_fingerprint=data.get("tokenizer_fingerprint"),
        token=data.get("token"),
        neutral=data.get("neutral"),
        fixed_k=data.get("fixed_k"),
        n_rows=store.get("n_rows"),
        store_url=store.get("url"),
        store_attrs=store.get("attrs") or {},
        config=data.get("config") or {},
        fitted_at=data.get("fitted_at"),
        input_fingerprint=data.get("input_fingerprint"),
        recipe=recipe,
        evaluation=evaluation,
    )


def manifest_from_json(raw: bytes, what: str = "manifest.json") -> Manifest:
    """Parse ``manifest.json`` bytes (see :func:`manifest_from_dict`)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(expected_found(what, "valid UTF-8 JSON", str(error))) from None
    return manifest_from_dict(data, what)
