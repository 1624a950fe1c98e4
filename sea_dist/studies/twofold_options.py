"""The ``twofold:`` section of a study config: the grid and the study's sizes, validated.

A two-fold config is a normal run config (``model``, ``data``, ``collect``, ``evaluate``...) plus
an optional ``twofold`` section::

    twofold:
      seeds: 3                 # random-subspace controls per setting
      limit: null              # questions per fold (null = all)
      bbq: best                # BBQ two-fold for this setting, best or none
      bbq_limit: null          # BBQ rows per fold
      resamples: 10000         # bootstrap resamples
      batch_size: null         # null = evaluate.batch_size
      settings:                # the grid, in the space syntax of sea_dist.studies.space
        - {name: residual, description: shipped default}
        - {name: residual-skipfirst, positions: skip-first}
        - paper-truthfulqa     # a preset

Without ``settings`` the built-in grid :data:`DEFAULT_SPACE` is used, at the ``fit`` section's
K+ / K- (0.99 by default), as before the grid moved to YAML. Settings listed in YAML carry their
own K (``energy`` / ``positive_energy`` / ``negative_energy``; 0.99 unless set).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sea_dist.config import SeaConfig
from sea_dist.errors import ConfigError, expected_found
from sea_dist.studies.space import Setting, parse_space

log = logging.getLogger(__name__)

DEFAULT_SPACE: tuple[dict[str, Any], ...] = (
    {"name": "residual", "description": "residual site, centred, l2, all layers (shipped default)"},
    {
        "name": "mlp",
        "site": "mlp",
        "description": "MLP-output site instead of the residual stream",
    },
    {"name": "residual-uncentred", "centre": False, "description": "no centring (residual)"},
    {
        "name": "mlp-uncentred",
        "site": "mlp",
        "centre": False,
        "description": "no centring (MLP output)",
    },
    {
        "name": "residual-average",
        "combine": "average",
        "description": "average combine, no norm fix",
    },
    {"name": "residual-last4", "layers": "last-4", "description": "only the last 4 layers edited"},
    {
        "name": "residual-last10",
        "layers": "last-10",
        "description": "only the last 10 layers edited",
    },
    {
        "name": "residual-last20",
        "layers": "last-20",
        "description": "only the last 20 layers edited",
    },
    {"name": "residual-tanh", "feature_map": "tanh", "description": "Phi-SEA, tanh(h / s)"},
    {
        "name": "residual-tanh-skipfirst",
        "feature_map": "tanh",
        "positions": "skip-first",
        "description": "Phi-SEA tanh, first token left unedited",
    },
    {
        "name": "residual-skipfirst",
        "positions": "skip-first",
        "description": "first token (attention sink) left unedited",
    },
    {
        "name": "mlp-last10",
        "site": "mlp",
        "layers": "last-10",
        "description": "MLP site, last 10 layers",
    },
)
"""The built-in grid in the space syntax: one axis at a time varied from ``residual``."""

DEFAULT_GRID: tuple[Setting, ...] = tuple(parse_space(list(DEFAULT_SPACE), "twofold.settings"))
""":data:`DEFAULT_SPACE` at K+ = K- = 0.99."""


def default_grid(
    positive_energy: float = 0.99, negative_energy: float = 0.99
) -> tuple[Setting, ...]:
    """The built-in grid at the given K+ and K-."""
    return tuple(
        dataclasses.replace(s, positive_energy=positive_energy, negative_energy=negative_energy)
        for s in DEFAULT_GRID
    )


@dataclass(frozen=True)
class TwofoldOptions:
    """What the study runs.

    Attributes:
        settings: the settings compared (each with its controls).
        seeds: random-subspace controls per setting.
        limit: questions per fold (a seeded subset; None = all 817).
        batch_size: sequences per forward pass when scoring (None = evaluate.batch_size).
        bbq: also run BBQ two-fold for this setting name, ``best`` (the best TruthfulQA margin)
            or None.
        bbq_limit: BBQ rows per fold (None = all 4,000 split in two).
        resamples: bootstrap resamples for the confidence intervals.
    """

    settings: tuple[Setting, ...] = DEFAULT_GRID
    seeds: int = 3
    limit: int | None = None
    batch_size: int | None = None
    bbq: str | None = "best"
    bbq_limit: int | None = None
    resamples: int = 10_000


_INTEGERS = ("seeds", "limit", "batch_size", "bbq_limit", "resamples")


def check_options(options: TwofoldOptions) -> None:
    """Refuse bad options before any work (a full study takes hours on a CPU).

    Raises:
        ConfigError: no settings, seeds/limits/batch below 1, or ``bbq`` not ``best`` nor a
            setting of the grid.
    """
    if not options.settings:
        raise ConfigError(expected_found("settings", "at least one", "none"))
    for name in _INTEGERS:
        value = getattr(options, name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            flag = name.replace("_", "-")
            raise ConfigError(expected_found(f"{name} (--{flag})", "an integer >= 1", value))
    names = [setting.name for setting in options.settings]
    if options.bbq is not None and options.bbq != "best" and options.bbq not in names:
        raise ConfigError(
            expected_found("bbq (--bbq)", f"'best' or one of {', '.join(names)}", options.bbq)
        )


def twofold_options_from_dict(data: Any, config: SeaConfig) -> TwofoldOptions:
    """Parse a ``twofold:`` section (None: every default); see the module doc.

    Args:
        data: the raw section (from :func:`sea_dist.studies.options.load_study_config`).
        config: the run config; its ``fit`` K+ / K- apply to the built-in grid.

    Raises:
        ConfigError: not a mapping, unknown keys, bad values or a bad settings space.
    """
    fit = config.fit
    grid = default_grid(fit.positive_energy, fit.negative_energy)
    if data is None:
        return TwofoldOptions(settings=grid)
    if not isinstance(data, Mapping):
        raise ConfigError(expected_found("twofold", "a mapping", type(data).__name__))
    allowed = {"settings", "bbq", *_INTEGERS}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            expected_found("twofold", f"keys among {', '.join(sorted(allowed))}", unknown)
        )
    kwargs: dict[str, Any] = {}
    for name in _INTEGERS:
        if name not in data:
            continue
        value = data[name]
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ConfigError(expected_found(f"twofold.{name}", "an integer >= 1", value))
        if value is None and name in ("seeds", "resamples"):
            raise ConfigError(expected_found(f"twofold.{name}", "an integer >= 1", value))
        kwargs[name] = value
    if "bbq" in data:
        bbq = data["bbq"]
        if bbq is not None and not isinstance(bbq, str):
            raise ConfigError(expected_found("twofold.bbq", "best, none or a setting name", bbq))
        kwargs["bbq"] = None if bbq in (None, "none") else bbq
    if "settings" in data:
        kwargs["settings"] = tuple(parse_space(data["settings"], "twofold.settings"))
        if (fit.positive_energy, fit.negative_energy) != (0.99, 0.99):
            log.warning(
                "fit.positive_energy / negative_energy are not used by twofold.settings: "
                "each setting carries its own K (energy, positive_energy, negative_energy; "
                "0.99 unless set)"
            )
    else:
        kwargs["settings"] = grid
    options = TwofoldOptions(**kwargs)
    check_options(options)
    return options
