"""Settings, named presets and search spaces: everything that changes an edit, read from YAML.

A :class:`Setting` fixes the fit (site, centring, feature map) and the recipe applied on top of
it (K+ and K- separately, combine, layers, strength ``alpha``, positions). Settings that share a
:attr:`Setting.fit_key` share one fit: the full spectra are kept, so K, layers, alpha and
positions change without refitting.

A search space in YAML is a list of entries; each entry is either a preset name or a mapping of
axes to a value or a list of values, expanded as a product::

    space:
      - paper-truthfulqa
      - {site: [residual, mlp], layers: [last-4, last-8], alpha: [0.1, 0.3], positions: all}
      - {preset: paper-truthfulqa, alpha: [0.25, 0.5]}      # a preset with axes varied

Axes: ``site``, ``centre``, ``feature_map``, ``feature_map_scale``, ``combine``, ``layers``,
``positive_energy`` (K+), ``negative_energy`` (K-), ``energy`` (both), ``alpha``, ``positions``;
``name`` and ``description`` label a single setting. The energy thresholds were once the axes
``k_pos`` / ``k_neg`` / ``k``; those names are still read, with a deprecation warning (k_pos and
k_neg name the chosen ranks everywhere else).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from sea_dist.config import LAYER_SPEC_RE, SITES
from sea_dist.errors import ConfigError, expected_found
from sea_dist.feature_maps import FEATURE_MAPS
from sea_dist.format.recipe import POSITIONS, EditRecipe

CONTROLS = ("random", "swapped")
MAX_SETTINGS = 2000
"""A space larger than this is refused: it is a typo (a product of long lists), not a plan."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    """One way of fitting and applying SEA.

    Attributes:
        name: short identifier used in tables, caches and ``--settings``.
        site: ``residual``, ``mlp`` or ``attn`` (the fit and the edit use the same site).
        centre: subtract the neutral means before the cross-covariances.
        feature_map: ``linear`` (SEA) or ``tanh`` / ``elu`` / ``sqexp`` (Phi-SEA).
        feature_map_scale: the map's scale; None = automatic (see ``studies.fits.auto_scale``).
        combine: ``l2`` or ``average``.
        layers: edited layers (``all``, ``last-L``, ``first-L``, ``last-P%``, or indices).
        positive_energy: K+, the energy threshold that picks each layer's rank k_pos.
        negative_energy: K-, the same for k_neg.
        alpha: edit strength in (0, 1].
        positions: ``all``, ``skip-first`` or ``generated``.
        description: what the setting is, for the report.
    """

    name: str
    site: str = "residual"
    centre: bool = True
    feature_map: str = "linear"
    feature_map_scale: float | None = None
    combine: str = "l2"
    layers: str | tuple[int, ...] = "all"
    positive_energy: float = 0.99
    negative_energy: float = 0.99
    alpha: float = 1.0
    positions: str = "all"
    description: str = ""

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError(f"setting {self.name}: " + "; ".join(problems))

    @property
    def fit_key(self) -> str:
        """Settings with the same key share one fit (spectra and means)."""
        parts = [self.site, "centred" if self.centre else "uncentred", self.feature_map]
        if self.feature_map != "linear":
            scale = self.feature_map_scale
            parts.append("auto" if scale is None else f"{scale:g}")
        return "-".join(parts)

    def recipe(self, feature_map_scale: float = 1.0) -> EditRecipe:
        """The recipe this setting publishes (``feature_map_scale`` as resolved by the fit)."""
        return EditRecipe(
            layers=self.layers,
            alpha=self.alpha,
            positions=self.positions,
            positive_energy=self.positive_energy,
            negative_energy=self.negative_energy,
            combine=self.combine,
            site=self.site,
            centred=self.centre,
            feature_map={"name": self.feature_map, "scale": feature_map_scale},
            name=self.name,
        )

    def axes(self) -> dict[str, Any]:
        """Every field but the labels, for tables and JSON."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.pop("description")
        if not isinstance(self.layers, str):
            data["layers"] = list(self.layers)
        return data


def _problems(s: Setting) -> list[str]:
    problems = []
    if s.site not in SITES:
        problems.append(f"site: expected one of {', '.join(SITES)}, found {s.site!r}")
    if s.feature_map not in FEATURE_MAPS:
        problems.append(f"feature_map: expected one of {', '.join(FEATURE_MAPS)}")
    if s.combine not in ("l2", "average"):
        problems.append(f"combine: expected l2 or average, found {s.combine!r}")
    if s.positions not in POSITIONS:
        problems.append(f"positions: expected one of {', '.join(POSITIONS)}, found {s.positions!r}")
    if isinstance(s.layers, str) and not LAYER_SPEC_RE.match(s.layers):
        problems.append(
            f"layers: expected all, last-L, first-L, last-P% or indices, found {s.layers!r}"
        )
    for key in ("positive_energy", "negative_energy"):
        value = getattr(s, key)
        if not (math.isfinite(value) and 0.0 < value <= 1.0):
            problems.append(f"{key}: expected an energy threshold in (0, 1], found {value!r}")
    if not (math.isfinite(s.alpha) and 0.0 < s.alpha <= 1.0):
        problems.append(f"alpha: expected a strength in (0, 1], found {s.alpha!r}")
    scale = s.feature_map_scale
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        problems.append(f"feature_map_scale: expected a number > 0 or auto, found {scale!r}")
    return problems


PRESETS: dict[str, Setting] = {
    "residual": Setting(
        "residual",
        description="residual site, centred, l2, all layers, K = 0.99, full strength "
        "(the shipped default before tuning)",
    ),
    "paper-truthfulqa": Setting(
        "paper-truthfulqa",
        site="mlp",
        centre=False,
        layers="last-66%",
        positive_energy=0.998,
        negative_energy=0.998,
        description="the paper's TruthfulQA placement: MLP output, uncentred, last 21/32 of the "
        "layers, K = 0.998, l2, all positions",
    ),
    "paper-bbq": Setting(
        "paper-bbq",
        site="mlp",
        centre=False,
        feature_map="sqexp",
        layers="last-2",
        positive_energy=0.9999,
        negative_energy=0.9999,
        description="the paper's BBQ placement: Phi-SEA squared-exponential, K = 0.9999, "
        "last 2 layers",
    ),
}

_AXES = (
    "site",
    "centre",
    "feature_map",
    "feature_map_scale",
    "combine",
    "layers",
    "positive_energy",
    "negative_energy",
    "energy",
    "alpha",
    "positions",
)
DEPRECATED_AXES = {"k_pos": "positive_energy", "k_neg": "negative_energy", "k": "energy"}
"""Old axis names of the energy thresholds, read with a warning."""


def _value_name(value: Any) -> str:
    if isinstance(value, bool):
        return "c" if value else "u"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "L" + "_".join(str(v) for v in value)
    return str(value)


def _auto_name(base: Setting | None, varied: Mapping[str, Any]) -> str:
    parts = [base.name] if base is not None else []
    for key, value in varied.items():
        short = {
            "positive_energy": "K+",
            "negative_energy": "K-",
            "energy": "K",
            "alpha": "a",
            "positions": "pos",
        }
        parts.append(f"{short.get(key, '')}{_value_name(value)}")
    return "-".join(parts) or "setting"


def _coerce(key: str, value: Any, where: str) -> Any:
    if key == "layers" and isinstance(value, list):
        if not value or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            raise ConfigError(expected_found(f"{where}.layers", "a list of layer indices", value))
        return tuple(value)
    if key == "feature_map_scale" and value == "auto":
        return None
    if key in ("positive_energy", "negative_energy", "energy", "alpha", "feature_map_scale"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(expected_found(f"{where}.{key}", "a number", value))
        return float(value)
    if key == "centre" and not isinstance(value, bool):
        raise ConfigError(expected_found(f"{where}.centre", "true or false", value))
    if key in ("site", "feature_map", "combine", "positions") and not isinstance(value, str):
        raise ConfigError(expected_found(f"{where}.{key}", "a string", value))
    return value


def _renamed(entry: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``entry`` with deprecated axis names replaced (a warning each; both names: refused)."""
    renamed = dict(entry)
    for old, new in DEPRECATED_AXES.items():
        if old in renamed:
            if new in renamed:
                raise ConfigError(f"{where}: expected {new} or {old} (deprecated), found both")
            log.warning(
                "%s: the axis %s is deprecated (k_pos/k_neg name the chosen ranks): use %s",
                where,
                old,
                new,
            )
            renamed[new] = renamed.pop(old)
    return renamed


def _expand_entry(entry: Mapping[str, Any], where: str) -> list[Setting]:
    entry = _renamed(entry, where)
    unknown = sorted(set(entry) - set(_AXES) - {"preset", "name", "description"})
    if unknown:
        raise ConfigError(expected_found(f"{where}", f"axes among {', '.join(_AXES)}", unknown))
    base = None
    if "preset" in entry:
        base = preset(entry["preset"], where)
    axes: dict[str, list[Any]] = {}
    for key in (axis for axis in _AXES if axis in entry):
        raw = entry[key]
        # a list of layer indices is one value of `layers`, a list of lists several
        many = isinstance(raw, list) and not (
            key == "layers" and raw and all(isinstance(i, int) for i in raw)
        )
        values = raw if many else [raw]
        if not values:
            raise ConfigError(expected_found(f"{where}.{key}", "at least one value", "[]"))
        axes[key] = [_coerce(key, value, where) for value in values]
    settings = []
    for combo in itertools.product(*axes.values()):
        varied = dict(zip(axes, combo))
        changes = dict(varied)
        if "energy" in changes:
            energy = changes.pop("energy")
            changes.setdefault("positive_energy", energy)
            changes.setdefault("negative_energy", energy)
        multi = {key: value for key, value in varied.items() if len(axes[key]) > 1}
        name = entry.get("name") if len(axes) == 0 or not multi else None
        name = name or _auto_name(base, multi if base is not None else varied)
        description = str(entry.get("description", ""))
        if base is not None:
            settings.append(replace(base, name=name, description=description, **changes))
        else:
            settings.append(Setting(name=name, description=description, **changes))
    return settings


def preset(name: Any, where: str = "preset") -> Setting:
    """The named preset.

    Raises:
        ConfigError: an unknown name.
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(expected_found(where, f"a preset among {', '.join(PRESETS)}", name))
    return PRESETS[name]


def parse_space(entries: Any, where: str = "space") -> list[Setting]:
    """Expand a YAML search space (see the module doc) into distinct, uniquely named settings.

    Raises:
        ConfigError: a malformed entry, an unknown axis or preset, a bad value, duplicate names,
            or more than :data:`MAX_SETTINGS` settings.
    """
    if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
        raise ConfigError(
            expected_found(where, "a non-empty list of presets or axis maps", entries)
        )
    settings: list[Setting] = []
    for index, entry in enumerate(entries):
        here = f"{where}[{index}]"
        if isinstance(entry, str):
            settings.append(preset(entry, here))
        elif isinstance(entry, Mapping):
            settings += _expand_entry(entry, here)
        else:
            raise ConfigError(expected_found(here, "a preset name or a mapping of axes", entry))
        if len(settings) > MAX_SETTINGS:
            raise ConfigError(
                expected_found(
                    where, f"at most {MAX_SETTINGS} settings", f"more than {MAX_SETTINGS}"
                )
            )
    seen: dict[str, Setting] = {}
    unique = []
    for setting in settings:
        if setting.name in seen:
            if seen[setting.name].axes() == setting.axes():
                continue  # the same setting listed twice
            raise ConfigError(
                expected_found(where, "distinct setting names", setting.name, "add a name: field")
            )
        seen[setting.name] = setting
        unique.append(setting)
    return unique


def select(settings: Sequence[Setting], names: Sequence[str] | None) -> list[Setting]:
    """The settings named in ``names`` (all when empty), in their order.

    Raises:
        ConfigError: a name that is not among them.
    """
    if not names:
        return list(settings)
    known = {s.name: s for s in settings}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            expected_found("--settings", f"names among {', '.join(known)}", ", ".join(unknown))
        )
    wanted = set(names)
    return [s for s in settings if s.name in wanted]


@dataclass(frozen=True)
class Variant:
    """A setting as fitted (``control=None``) or one of its controls (same k per layer).

    Attributes:
        setting: the setting.
        control: None (SEA itself), ``random`` or ``swapped``.
        seed: the random control's seed (0 otherwise).
    """

    setting: Setting
    control: str | None = None
    seed: int = 0

    @property
    def key(self) -> str:
        """Unique name: ``residual``, ``residual~random1``, ``residual~swapped``."""
        if self.control is None:
            return self.setting.name
        suffix = f"random{self.seed}" if self.control == "random" else self.control
        return f"{self.setting.name}~{suffix}"


def variants_of(setting: Setting, seeds: int) -> list[Variant]:
    """SEA itself, then ``seeds`` random controls, then the swapped control."""
    return [
        Variant(setting),
        *(Variant(setting, "random", seed) for seed in range(seeds)),
        Variant(setting, "swapped"),
    ]


def setting_id(setting: Setting) -> str:
    """Cache identity of a setting: its name and a digest of every axis (an edited YAML that
    reuses a name never reuses stale scores)."""
    blob = json.dumps(setting.axes(), sort_keys=True, default=str).encode()
    return f"{setting.name}-{hashlib.sha256(blob).hexdigest()[:8]}"


def variant_id(variant: Variant) -> str:
    """Cache identity of a variant (setting id + control)."""
    suffix = variant.key[len(variant.setting.name) :]
    return setting_id(variant.setting) + suffix
