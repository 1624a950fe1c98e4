"""From one layer's moments to its SEA projections: centring, SVD path, k rule (pure numpy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sea_dist.config import FitConfig
from sea_dist.fit.covariance import LayerMoments
from sea_dist.fit.qr import qr_svd, thin_qr
from sea_dist.fit.result import LayerProjection
from sea_dist.fit.svd import Spectrum, SvdPath, exact_svd, randomized_svd

SIGNS = ("pos", "neg")


def _seed(config: FitConfig, layer: int, sign: str) -> np.random.SeedSequence:
    """Independent, reproducible Gaussian streams per (seed, layer, sign)."""
    return np.random.SeedSequence([config.seed, layer, SIGNS.index(sign)])


def spectra(
    layer: int, moments: LayerMoments, config: FitConfig, path: SvdPath, consume: bool = True
) -> dict[str, Spectrum]:
    """The spectra of Omega+ and Omega- of one layer.

    Args:
        layer: model layer number (seeds the randomized path).
        moments: the layer's moments over all rows (with rows kept when ``path == "qr"``).
        config: K+/K-, fixed_k, centring and randomized-SVD settings.
        path: ``exact``, ``qr`` or ``randomized``.
        consume: let the d x d products be overwritten in place (saves two d x d copies).

    Returns:
        ``{"pos": ..., "neg": ...}``.
    """
    ratios = {"pos": config.positive_energy, "neg": config.negative_energy}
    if path == "qr":
        neutral, positive, negative = moments.centred_rows(config.centre)
        left = thin_qr(neutral)
        return {
            sign: qr_svd(left, thin_qr(rows), moments.n_rows, ratios[sign], config.fixed_k)
            for sign, rows in (("pos", positive), ("neg", negative))
        }
    result = {}
    for sign in SIGNS:
        omega = moments.cross_covariance(sign, config.centre, in_place=consume)
        if path == "exact":
            result[sign] = exact_svd(omega, ratios[sign], config.fixed_k)
        else:
            result[sign] = randomized_svd(
                omega,
                ratios[sign],
                config.fixed_k,
                oversample=config.oversample,
                power_iterations=config.power_iterations,
                seed=_seed(config, layer, sign),
            )
        del omega
    return result


def fit_layer(
    layer: int, moments: LayerMoments, config: FitConfig, path: SvdPath, consume: bool = True
) -> LayerProjection:
    """Fit one layer's projections.

    The recorded ``svd_path`` is the path both spectra used; when the randomized path handed one
    of them to the exact path it stays ``randomized`` (the result is as exact as its least exact
    part).

    Args:
        layer: model layer number.
        moments: the layer's moments over all rows.
        config: the fit configuration.
        path: the SVD path chosen for the layer.
        consume: see :func:`spectra`.
    """
    mean = moments.means()[0] if config.centre else None
    signature = moments.signature()
    found = spectra(layer, moments, config, path, consume)
    pos, neg = found["pos"], found["neg"]
    used = pos.path if pos.path == neg.path else "randomized"
    return LayerProjection(
        layer=layer,
        **_sign_fields("pos", pos),
        **_sign_fields("neg", neg),
        mean=mean,
        signature=signature,
        svd_path=used,
    )


def _sign_fields(sign: str, spectrum: Spectrum) -> dict[str, Any]:
    """The ``*_pos`` or ``*_neg`` fields of a :class:`LayerProjection` from that sign's spectrum
    (both signs map the same five spectrum attributes)."""
    return {
        f"U_{sign}": spectrum.U,
        f"S_{sign}": spectrum.singular_values,
        f"k_{sign}": spectrum.k,
        f"energy_{sign}": spectrum.energy,
        f"total_energy_{sign}": spectrum.total_energy,
    }
