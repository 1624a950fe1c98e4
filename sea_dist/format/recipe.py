"""The edit recipe and the evaluation record that travel inside an artifact's manifest.

A fit holds projections for every fitted layer at full strength. *How* they are applied is the
recipe: which layers, the energy thresholds K+ / K- that picked each layer's k, the combine rule,
the strength ``alpha`` and which token positions are edited. The evaluation record says what the
recipe did on held-out data next to its controls and whether that stays inside a damage budget;
the promotion gate (:func:`gate_failures`) reads it. Both are plain JSON under the manifest keys
``recipe`` and ``evaluation``; manifests written before them have neither and still load (the
recipe then defaults to "every fitted layer, full strength, every position").

Standard library only: a serving image imports this.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sea_dist.errors import ArtifactError, expected_found

POSITIONS = ("all", "skip-first", "generated")
"""Which tokens an edit touches: every token; all but each sequence's first real token (the
attention sink); or only tokens after the prompt (answer / generated tokens)."""

RECIPE_SCHEMA = 1
EVALUATION_SCHEMA = 1
PROJECTIONS_FINGERPRINT = "projections"
"""Key of ``EvaluationRecord.data_fingerprints`` naming the measured projections (sha256 prefix)."""

DAMAGE_METRICS = (
    "perplexity_ratio",
    "builtin_accuracy_delta",
    "logprob_per_token_delta",
    "generation_delta",
)
"""The damage measurements a passing evaluation must carry (see :class:`DamageBudget`)."""


def _number(data: Mapping[str, Any], key: str, what: str, default: float | None = None) -> float:
    value = data.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ArtifactError(expected_found(f"{what}: {key}", "a finite number", value))
    return float(value)


def _json_object(data: Any, what: str, schema: int | None = None) -> Mapping[str, Any]:
    """``data`` as a JSON object, refusing anything else and (when ``schema`` is given) any
    ``schema`` key other than that version; a missing key counts as that version (older files)."""
    if not isinstance(data, Mapping):
        raise ArtifactError(expected_found(what, "a JSON object", type(data).__name__))
    if schema is not None and data.get("schema", schema) != schema:
        raise ArtifactError(
            expected_found(f"{what}: schema", str(schema), data.get("schema"), "upgrade sea-dist")
        )
    return data


@dataclass(frozen=True)
class EditRecipe:
    """How an artifact's projections are applied (manifest key ``recipe``).

    Attributes:
        layers: ``"all"``, ``"last-L"``, ``"first-L"``, ``"last-P%"`` / ``"first-P%"`` of the
            model's layers, or explicit 0-based decoder layer indices.
        alpha: edit strength in [0, 1]: ``y = x + alpha * (p + n - x)`` before the l2 rescale
            (1 = the full SEA edit, 0 = the identity).
        positions: one of :data:`POSITIONS`.
        positive_energy: K+ that chose each layer's k+ (None: a fixed k or unknown).
        negative_energy: K-.
        combine: ``l2`` or ``average``.
        site: ``residual``, ``mlp`` or ``attn``.
        centred: the fit subtracted the neutral mean.
        feature_map: ``{"name": ..., "scale": ...}``.
        name: the setting or preset this recipe came from (for humans).
    """

    layers: str | tuple[int, ...] = "all"
    alpha: float = 1.0
    positions: str = "all"
    positive_energy: float | None = None
    negative_energy: float | None = None
    combine: str = "l2"
    site: str = "residual"
    centred: bool = True
    feature_map: Mapping[str, Any] = field(default_factory=lambda: {"name": "linear", "scale": 1.0})
    name: str = ""

    def __post_init__(self) -> None:
        what = f"recipe {self.name or '(unnamed)'}"
        if not (math.isfinite(self.alpha) and 0.0 <= self.alpha <= 1.0):
            raise ArtifactError(expected_found(f"{what}: alpha", "a number in [0, 1]", self.alpha))
        if self.positions not in POSITIONS:
            raise ArtifactError(
                expected_found(f"{what}: positions", " / ".join(POSITIONS), self.positions)
            )
        for key in ("positive_energy", "negative_energy"):
            value = getattr(self, key)
            if value is not None and not 0.0 < value <= 1.0:
                raise ArtifactError(
                    expected_found(f"{what}: {key}", "an energy threshold in (0, 1]", value)
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON data (``layers`` as a string or a list)."""
        return {
            "schema": RECIPE_SCHEMA,
            "name": self.name,
            "site": self.site,
            "centred": self.centred,
            "feature_map": dict(self.feature_map),
            "combine": self.combine,
            "positive_energy": self.positive_energy,
            "negative_energy": self.negative_energy,
            "layers": self.layers if isinstance(self.layers, str) else list(self.layers),
            "alpha": self.alpha,
            "positions": self.positions,
        }

    @classmethod
    def from_dict(cls, data: Any, what: str = "recipe") -> EditRecipe:
        """Parse :meth:`to_dict` output.

        Raises:
            ArtifactError: a missing or malformed field.
        """
        data = _json_object(data, what, RECIPE_SCHEMA)
        layers = data.get("layers", "all")
        if isinstance(layers, list) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in layers
        ):
            layers = tuple(layers)
        elif not isinstance(layers, str):
            raise ArtifactError(
                expected_found(f"{what}: layers", "a layer spec string or list of ints", layers)
            )
        energies = {}
        for key in ("positive_energy", "negative_energy"):
            energies[key] = None if data.get(key) is None else _number(data, key, what)
        feature_map = data.get("feature_map") or {"name": "linear", "scale": 1.0}
        if not isinstance(feature_map, Mapping) or not isinstance(feature_map.get("name"), str):
            raise ArtifactError(
                expected_found(f"{what}: feature_map", "{name, scale}", feature_map)
            )
        texts = {}
        for key, default in (("positions", "all"), ("combine", "l2"), ("site", "residual")):
            value = data.get(key, default)
            if not isinstance(value, str):
                raise ArtifactError(expected_found(f"{what}: {key}", "a string", value))
            texts[key] = value
        return cls(
            layers=layers,
            alpha=_number(data, "alpha", what, 1.0),
            positions=texts["positions"],
            positive_energy=energies["positive_energy"],
            negative_energy=energies["negative_energy"],
            combine=texts["combine"],
            site=texts["site"],
            centred=bool(data.get("centred", True)),
            feature_map=dict(feature_map),
            name=str(data.get("name", "")),
        )


@dataclass(frozen=True)
class DamageBudget:
    """How much damage an edit may do, measured against the unedited model on held-out data.

    Attributes:
        max_perplexity_ratio: held-out perplexity edited / unedited at most this.
        max_builtin_accuracy_drop: built-in factual accuracy at least unedited minus this.
        min_logprob_per_token_delta: mean change of log p per answer token (nats) at least this.
        max_generation_drop: share of greedy answers containing the true answer at least
            unedited minus this.
    """

    max_perplexity_ratio: float = 1.05
    max_builtin_accuracy_drop: float = 0.02
    min_logprob_per_token_delta: float = -0.10
    max_generation_drop: float = 0.05

    def to_dict(self) -> dict[str, float]:
        """JSON data."""
        return {
            "max_perplexity_ratio": self.max_perplexity_ratio,
            "max_builtin_accuracy_drop": self.max_builtin_accuracy_drop,
            "min_logprob_per_token_delta": self.min_logprob_per_token_delta,
            "max_generation_drop": self.max_generation_drop,
        }

    @classmethod
    def from_dict(cls, data: Any, what: str = "budget") -> DamageBudget:
        """Parse :meth:`to_dict` output (missing keys take the defaults)."""
        data = _json_object(data, what)
        defaults = cls()
        return cls(
            **{key: _number(data, key, what, getattr(defaults, key)) for key in defaults.to_dict()}
        )

    def failures(self, metrics: Mapping[str, float | None], require_all: bool = True) -> list[str]:
        """One reason per damage metric outside the budget, and per missing one when
        ``require_all`` (a search checks the cheap metrics before the costly ones exist)."""
        limits = (
            ("perplexity_ratio", "<=", self.max_perplexity_ratio),
            ("builtin_accuracy_delta", ">=", -self.max_builtin_accuracy_drop),
            ("logprob_per_token_delta", ">=", self.min_logprob_per_token_delta),
            ("generation_delta", ">=", -self.max_generation_drop),
        )
        reasons = []
        for key, op, limit in limits:
            value = metrics.get(key)
            if value is None or not math.isfinite(value):
                if require_all:
                    reasons.append(f"{key} not measured")
            elif (op == "<=" and value > limit) or (op == ">=" and value < limit):
                reasons.append(f"{key} {value:.4g} outside the budget ({op} {limit:g})")
        return reasons


@dataclass(frozen=True)
class EvaluationRecord:
    """What an edit did on held-out data (manifest key ``evaluation``).

    Attributes:
        effect: name of the headline effect, e.g. ``truthfulqa_mc2_margin`` (SEA minus its best
            control, paired over held-out questions).
        metrics: ``effect`` and ``effect_lo`` (lower end of its 95% interval), the
            :data:`DAMAGE_METRICS`, and anything else worth keeping (``None`` = not measured).
        budget: the damage budget the record was judged against.
        data_fingerprints: what was evaluated on (name -> sha256 prefix).
        source: what produced the record (``tune``, ``run``...).
        evaluated_at: ISO-8601 UTC time.
    """

    effect: str
    metrics: Mapping[str, float | None]
    budget: DamageBudget = field(default_factory=DamageBudget)
    data_fingerprints: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    evaluated_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    @property
    def passed(self) -> bool:
        """True when :func:`gate_failures` finds nothing."""
        return not gate_failures(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON data, with the gate's verdict (recomputed whenever the record is read)."""
        reasons = gate_failures(self)
        return {
            "schema": EVALUATION_SCHEMA,
            "effect": self.effect,
            "metrics": {k: _finite_or_none(v) for k, v in self.metrics.items()},
            "budget": self.budget.to_dict(),
            "passed": not reasons,
            "reasons": reasons,
            "data_fingerprints": dict(self.data_fingerprints),
            "source": self.source,
            "evaluated_at": self.evaluated_at,
        }

    @classmethod
    def from_dict(cls, data: Any, what: str = "evaluation") -> EvaluationRecord:
        """Parse :meth:`to_dict` output; the stored ``passed`` is ignored (recomputed).

        Raises:
            ArtifactError: a missing or malformed field.
        """
        data = _json_object(data, what, EVALUATION_SCHEMA)
        effect = data.get("effect")
        metrics = data.get("metrics")
        if not isinstance(effect, str) or not isinstance(metrics, Mapping):
            raise ArtifactError(
                expected_found(what, "'effect' (string) and 'metrics' (object)", sorted(data))
            )
        parsed: dict[str, float | None] = {}
        for key, value in metrics.items():
            if value is None:
                parsed[str(key)] = None
            elif isinstance(value, int | float) and not isinstance(value, bool):
                parsed[str(key)] = float(value)
            else:
                raise ArtifactError(expected_found(f"{what}: metrics.{key}", "a number", value))
        fingerprints = data.get("data_fingerprints") or {}
        if not isinstance(fingerprints, Mapping):
            raise ArtifactError(
                expected_found(f"{what}: data_fingerprints", "an object", fingerprints)
            )
        return cls(
            effect=effect,
            metrics=parsed,
            budget=DamageBudget.from_dict(data.get("budget") or {}, f"{what}: budget"),
            data_fingerprints={str(k): str(v) for k, v in fingerprints.items()},
            source=str(data.get("source", "")),
            evaluated_at=str(data.get("evaluated_at", "")),
        )


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def gate_failures(record: EvaluationRecord | None) -> list[str]:
    """Why ``record`` may not be promoted (empty: it passes).

    A record passes when every damage metric is measured and inside its budget, and the effect's
    interval lies above 0 (SEA beats its best control with a 95% interval excluding 0).
    """
    if record is None:
        return ["no evaluation record (publish it with an evaluation, e.g. from sea-dist tune)"]
    reasons = record.budget.failures(record.metrics)
    low = record.metrics.get("effect_lo")
    if low is None or not math.isfinite(low):
        reasons.append(f"{record.effect} interval not measured")
    elif low <= 0:
        reasons.append(
            f"{record.effect} interval lower end {low:+.4f} <= 0 (does not beat its best control)"
        )
    return reasons


def worse_than(candidate: EvaluationRecord | None, held: EvaluationRecord | None) -> str | None:
    """A reason when ``candidate`` evaluates worse than ``held`` on the same effect, else None.

    Records of different effects (or without an effect value) are not comparable: None.
    """
    if candidate is None or held is None or candidate.effect != held.effect:
        return None
    new, old = candidate.metrics.get("effect"), held.metrics.get("effect")
    if new is None or old is None:
        return None
    if new < old:
        return f"{candidate.effect} {new:+.4f} is below the current version's {old:+.4f}"
    return None
