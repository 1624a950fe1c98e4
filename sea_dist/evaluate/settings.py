"""The settings compared by the controlled two-fold study, and the controls each one gets.

A :class:`Setting` fixes everything that changes the edit: the site, centring, the combine rule,
which layers are edited, the feature map and whether the first token is left alone. The default
grid varies one of these at a time from the ``residual`` setting (the shipped default), as the
issue asks: site, centring, combine, last-L for three L, one Phi-SEA map, the first token.

Every setting is compared with two controls that keep its k per layer, its site, mean, combine
and layers, and change only the directions: ``random`` (random orthonormal subspaces of the same
dimensions, one draw per seed) and ``swapped`` (positive and negative roles exchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sea_dist.errors import ConfigError, expected_found

CONTROLS = ("random", "swapped")


@dataclass(frozen=True)
class Setting:
    """One way of fitting and applying SEA.

    Attributes:
        name: short identifier used in tables, cache files and ``--settings``.
        site: ``residual`` or ``mlp`` (the fit and the edit use the same site).
        centre: subtract the neutral means before the cross-covariances.
        combine: ``l2`` or ``average``.
        layers: which fitted layers are edited (``all``, ``last-L``, ``first-L``).
        feature_map: ``linear`` (SEA) or ``tanh`` / ``elu`` / ``sqexp`` (Phi-SEA).
        feature_map_scale: the map's input scale; None = the 99.9th percentile of the neutral
            activations' magnitudes (see :func:`sea_dist.evaluate.variants.auto_scale`).
        skip_first_token: leave each sequence's first token (the attention sink) unedited.
        description: what the setting changes, for the report.
    """

    name: str
    site: str = "residual"
    centre: bool = True
    combine: str = "l2"
    layers: str = "all"
    feature_map: str = "linear"
    feature_map_scale: float | None = None
    skip_first_token: bool = False
    description: str = ""

    @property
    def fit_key(self) -> str:
        """Settings with the same key share one fit (spectra, k and means)."""
        scale = "auto" if self.feature_map_scale is None else f"{self.feature_map_scale:g}"
        parts = [self.site, "centred" if self.centre else "uncentred", self.feature_map]
        if self.feature_map != "linear":
            parts.append(scale)
        return "-".join(parts)


@dataclass(frozen=True)
class Variant:
    """A setting as fitted (``control=None``) or one of its controls.

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


DEFAULT_GRID: tuple[Setting, ...] = (
    Setting("residual", description="residual site, centred, l2, all layers (shipped default)"),
    Setting("mlp", site="mlp", description="MLP-output site instead of the residual stream"),
    Setting("residual-uncentred", centre=False, description="no centring (residual)"),
    Setting("mlp-uncentred", site="mlp", centre=False, description="no centring (MLP output)"),
    Setting("residual-average", combine="average", description="average combine, no norm fix"),
    Setting("residual-last4", layers="last-4", description="only the last 4 layers edited"),
    Setting("residual-last10", layers="last-10", description="only the last 10 layers edited"),
    Setting("residual-last20", layers="last-20", description="only the last 20 layers edited"),
    Setting("residual-tanh", feature_map="tanh", description="Phi-SEA, tanh(h / s)"),
    Setting(
        "residual-tanh-skipfirst",
        feature_map="tanh",
        skip_first_token=True,
        description="Phi-SEA tanh, first token left unedited",
    ),
    Setting(
        "residual-skipfirst",
        skip_first_token=True,
        description="first token (attention sink) left unedited",
    ),
    Setting("mlp-last10", site="mlp", layers="last-10", description="MLP site, last 10 layers"),
)


def select_settings(
    names: Sequence[str] | None, grid: Sequence[Setting] = DEFAULT_GRID
) -> list[Setting]:
    """The grid's settings named in ``names`` (all of them when None), in grid order.

    Raises:
        ConfigError: a name that is not in the grid.
    """
    if not names:
        return list(grid)
    known = {setting.name: setting for setting in grid}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            expected_found("--settings", f"names among {', '.join(known)}", ", ".join(unknown))
        )
    wanted = set(names)
    return [setting for setting in grid if setting.name in wanted]


def variants_of(setting: Setting, seeds: int) -> list[Variant]:
    """SEA itself, then ``seeds`` random controls, then the swapped control."""
    return [
        Variant(setting),
        *(Variant(setting, "random", seed) for seed in range(seeds)),
        Variant(setting, "swapped"),
    ]
