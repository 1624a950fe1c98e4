"""Projections of one fold's recorded activations for a setting and for its controls.

The fit is the method of DESIGN.md section 1 on the exact path (full SVD per layer, float64),
done in memory: the study's folds hold a few hundred rows at d in the hundreds or thousands, so
no store or Dask pass is needed. The full left singular bases are kept, so the controls reuse
them: ``swapped`` takes the top k+ directions of Omega- as "kept" and the top k- of Omega+ as
"removed"; ``random`` draws orthonormal subspaces of the same dimensions. Both keep the setting's
k per layer, means, site, combine and layers, so only the directions differ from SEA.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from sea_dist.edit.loader import edit_from_fields
from sea_dist.edit.projections import SeaEdit
from sea_dist.evaluate.settings import Setting, Variant
from sea_dist.feature_maps import FeatureMap
from sea_dist.fit.covariance import LayerMoments
from sea_dist.fit.rank import captured_energy, select_k


@dataclass(frozen=True)
class ModelInfo:
    """What an edit records about the model it was fitted on."""

    model_id: str
    architecture: str
    d_model: int
    n_layers: int


@dataclass(frozen=True)
class RecordedFold:
    """Activations of one fold's demonstrations at one site, all recorded layers.

    Attributes:
        layers: model layer numbers, ascending (axis 1 of the arrays).
        neutral, positive, negative: ``(N, n_layers, d)`` float32.
    """

    layers: tuple[int, ...]
    neutral: np.ndarray
    positive: np.ndarray
    negative: np.ndarray


@dataclass(frozen=True)
class LayerFit:
    """Full spectra of one layer's Omega+ and Omega- and the SEA ranks.

    Attributes:
        basis_pos, basis_neg: ``(d, d)`` float32 left singular vectors, descending.
        s_pos, s_neg: ``(d,)`` float64 singular values.
        k_pos, k_neg: the ranks the energy rule keeps.
        energy_pos, energy_neg: their captured energy ratios.
        mean: ``(d,)`` neutral mean in feature space, or None when uncentred.
    """

    basis_pos: np.ndarray
    basis_neg: np.ndarray
    s_pos: np.ndarray
    s_neg: np.ndarray
    k_pos: int
    k_neg: int
    energy_pos: float
    energy_neg: float
    mean: np.ndarray | None


@dataclass(frozen=True)
class FoldFit:
    """Every layer's :class:`LayerFit` for one fit key, plus the feature map used."""

    layers: Mapping[int, LayerFit]
    feature_map: FeatureMap

    def k_table(self) -> dict[str, list[int]]:
        """``{"layer": [...], "k_pos": [...], "k_neg": [...]}`` in layer order."""
        order = sorted(self.layers)
        return {
            "layer": order,
            "k_pos": [self.layers[layer].k_pos for layer in order],
            "k_neg": [self.layers[layer].k_neg for layer in order],
        }


def auto_scale(recorded: RecordedFold) -> float:
    """The 99.9th percentile of ``|h|`` over the neutral activations of all layers.

    Used as the ``tanh`` input scale: 99.9% of the entries stay in tanh's unsaturated range
    (``|h| / s <= 1``), while a scale near the typical magnitude would flatten much of the
    residual stream, whose massive outlier entries ``atanh`` cannot restore.
    """
    return float(np.quantile(np.abs(recorded.neutral), 0.999))


def fit_fold(
    recorded: RecordedFold,
    setting: Setting,
    positive_energy: float = 0.99,
    negative_energy: float = 0.99,
) -> FoldFit:
    """Fit every recorded layer with the setting's centring and feature map (exact SVD)."""
    scale = setting.feature_map_scale
    if scale is None:
        scale = auto_scale(recorded) if setting.feature_map != "linear" else 1.0
    feature_map = FeatureMap(setting.feature_map, scale)
    layers = {}
    for axis, layer in enumerate(recorded.layers):
        neutral, positive, negative = (
            feature_map.forward(array[:, axis].astype(np.float64))
            for array in (recorded.neutral, recorded.positive, recorded.negative)
        )
        moments = LayerMoments.from_rows(neutral, positive, negative, keep_rows=False)
        fitted = {}
        for sign, ratio in (("pos", positive_energy), ("neg", negative_energy)):
            omega = moments.cross_covariance(sign, setting.centre)
            u, s, _ = np.linalg.svd(omega)
            total = float(np.sum(s * s))
            k = select_k(s, total, ratio, None, omega.shape)
            fitted[sign] = (u.astype(np.float32), s, k, captured_energy(s, k, total))
        layers[layer] = LayerFit(
            basis_pos=fitted["pos"][0],
            basis_neg=fitted["neg"][0],
            s_pos=fitted["pos"][1],
            s_neg=fitted["neg"][1],
            k_pos=fitted["pos"][2],
            k_neg=fitted["neg"][2],
            energy_pos=fitted["pos"][3],
            energy_neg=fitted["neg"][3],
            mean=moments.means()[0] if setting.centre else None,
        )
    return FoldFit(layers=layers, feature_map=feature_map)


def _random_basis(d: int, k: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, k)))
    return (q * np.sign(np.diag(r))).astype(np.float32)  # sign fix: a uniform (Haar) draw


def directions(variant: Variant, fit: FoldFit, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """``(U_pos, U_neg)`` of one layer for SEA or a control, with SEA's k+ and k-."""
    entry = fit.layers[layer]
    if variant.control is None:
        return entry.basis_pos[:, : entry.k_pos], entry.basis_neg[:, : entry.k_neg]
    if variant.control == "swapped":
        return entry.basis_neg[:, : entry.k_pos], entry.basis_pos[:, : entry.k_neg]
    rng = np.random.default_rng([variant.seed, layer])
    d = entry.basis_pos.shape[0]
    return _random_basis(d, entry.k_pos, rng), _random_basis(d, entry.k_neg, rng)


def build_edit(variant: Variant, fit: FoldFit, model: ModelInfo, source: str) -> SeaEdit:
    """The :class:`SeaEdit` of ``variant`` (every fitted layer; the setting picks which to use)."""
    setting = variant.setting
    tensors: dict[str, torch.Tensor] = {}
    for layer in fit.layers:
        u_pos, u_neg = directions(variant, fit, layer)
        tensors[f"layers.{layer}.U_pos"] = torch.from_numpy(np.ascontiguousarray(u_pos))
        tensors[f"layers.{layer}.U_neg"] = torch.from_numpy(np.ascontiguousarray(u_neg))
        mean = fit.layers[layer].mean
        if mean is not None:
            tensors[f"layers.{layer}.mean"] = torch.from_numpy(mean.astype(np.float32))
    fields = {
        "model_id": model.model_id,
        "architecture": model.architecture,
        "d_model": model.d_model,
        "n_model_layers": model.n_layers,
        "site": setting.site,
        "site_template": None,
        "layers": sorted(fit.layers),
        "combine": setting.combine,
        "feature_map": fit.feature_map.to_dict(),
        "centred": setting.centre,
    }
    return edit_from_fields(fields, tensors, source)
