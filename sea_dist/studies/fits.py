"""Recordings and fits of a study: one recording pass for every site, one fit per fit key.

:func:`record_sites` records the neutral / positive / negative activations of a set of
demonstrations at several sites in one pass (one neutral generation, one forward pass per
sequence, every site read by hooks). :func:`fit_recorded` fits every layer through the
production fit path (:func:`sea_dist.fit.projections.spectra` on
:class:`~sea_dist.fit.covariance.LayerMoments`, exact SVD, float64) keeping the *full* spectra
and bases, so a setting's K+ / K-, layers, alpha and positions are applied afterwards without
refitting (:meth:`StudyFit.ranks`).

Controls keep SEA's k per layer and change only the directions: ``swapped`` takes the top k+ of
Omega- as kept and the top k- of Omega+ as removed; ``random`` draws Haar-random orthonormal
subspaces of the same sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sea_dist.collect.record import ActivationRecorder
from sea_dist.config import FitConfig
from sea_dist.edit.loader import edit_from_fields
from sea_dist.edit.projections import SeaEdit
from sea_dist.errors import ConfigError
from sea_dist.feature_maps import FeatureMap
from sea_dist.fit.covariance import LayerMoments
from sea_dist.fit.projections import spectra
from sea_dist.fit.rank import captured_energy, select_k
from sea_dist.layers import resolve_layers, site_modules
from sea_dist.studies.space import Setting, Variant


@dataclass(frozen=True)
class ModelInfo:
    """What an edit records about the model it was fitted on."""

    model_id: str
    architecture: str
    d_model: int
    n_layers: int


@dataclass(frozen=True)
class Recorded:
    """Activations of one set of demonstrations at one site, every layer.

    Attributes:
        layers: model layer numbers, ascending (axis 1 of the arrays).
        neutral, positive, negative: ``(N, n_layers, d)`` float32.
    """

    layers: tuple[int, ...]
    neutral: np.ndarray
    positive: np.ndarray
    negative: np.ndarray

    def rows(self, index: np.ndarray) -> Recorded:
        """The same layers for a subset of the demonstrations."""
        return Recorded(
            self.layers, self.neutral[index], self.positive[index], self.negative[index]
        )


def record_sites(
    loaded: Any,
    template: Any,
    demos: Sequence[Any],
    sites: Sequence[str],
    options: Any,
) -> tuple[dict[str, Recorded], list[str]]:
    """Record ``demos`` at every layer of every site in ``sites`` in one pass.

    Args:
        loaded: a :class:`sea_dist.models.LoadedModel`.
        template: renders prompts and completions.
        demos: the demonstrations.
        sites: site names (``residual``, ``mlp``, ``attn``).
        options: :class:`sea_dist.collect.record.RecordOptions`.

    Returns:
        ``({site: Recorded}, generated neutral texts)``.
    """
    n = loaded.n_layers
    layers = tuple(range(n))
    modules: dict[int, torch.nn.Module] = {}
    for index, site in enumerate(sites):
        # one key space for all sites: the recorder only sorts and reads the keys
        for layer, module in site_modules(loaded.model, layers, site).items():
            modules[index * n + layer] = module
    recorder = ActivationRecorder(loaded.model, loaded.tokenizer, modules, template, options)
    result = recorder.record(demos)
    out = {}
    for index, site in enumerate(sites):
        axis = slice(index * n, (index + 1) * n)
        out[site] = Recorded(
            layers,
            result.neutral[:, axis],
            result.positive[:, axis],
            result.negative[:, axis],
        )
    return out, list(result.generated)


@dataclass(frozen=True)
class LayerSpectra:
    """Full spectra and left singular bases of one layer's Omega+ and Omega-.

    Attributes:
        basis_pos, basis_neg: ``(d, d)`` float32, columns in descending singular value order.
        s_pos, s_neg: ``(d,)`` float64 singular values.
        total_pos, total_neg: ``||Omega||_F^2``.
        mean: ``(d,)`` float32 neutral mean in feature space, or None when uncentred.
    """

    basis_pos: np.ndarray
    basis_neg: np.ndarray
    s_pos: np.ndarray
    s_neg: np.ndarray
    total_pos: float
    total_neg: float
    mean: np.ndarray | None


def auto_scale(recorded: Recorded) -> float:
    """The 99.9th percentile of ``|h|`` over the neutral activations of all layers.

    99.9% of the entries then stay in the maps' well-conditioned range (``|h| / s <= 1``).
    """
    return float(np.quantile(np.abs(recorded.neutral), 0.999))


@dataclass(frozen=True)
class StudyFit:
    """Every layer's :class:`LayerSpectra` for one fit key, and the feature map used."""

    layers: Mapping[int, LayerSpectra]
    feature_map: FeatureMap
    centred: bool

    def ranks(self, positive_energy: float, negative_energy: float) -> dict[int, tuple[int, int]]:
        """``{layer: (k_pos, k_neg)}`` chosen by the energy rule at the thresholds K+, K-."""
        result = {}
        for layer, entry in self.layers.items():
            shape = (entry.basis_pos.shape[0],) * 2
            result[layer] = (
                select_k(entry.s_pos, entry.total_pos, positive_energy, None, shape),
                select_k(entry.s_neg, entry.total_neg, negative_energy, None, shape),
            )
        return result

    def energies(
        self, positive_energy: float, negative_energy: float
    ) -> dict[int, tuple[float, float]]:
        """Captured energy of the chosen ranks, per layer."""
        ranks = self.ranks(positive_energy, negative_energy)
        return {
            layer: (
                captured_energy(e.s_pos, ranks[layer][0], e.total_pos),
                captured_energy(e.s_neg, ranks[layer][1], e.total_neg),
            )
            for layer, e in self.layers.items()
        }


def fit_recorded(recorded: Recorded, setting: Setting) -> StudyFit:
    """Fit every recorded layer with the setting's centring and feature map (full spectra).

    Uses the production path: :class:`LayerMoments` (float64 moments) and
    :func:`sea_dist.fit.projections.spectra` with the exact SVD, asking for every direction
    (``fixed_k = d``) so that any K can be applied later with the same k rule
    (:func:`sea_dist.fit.rank.select_k`).
    """
    scale = setting.feature_map_scale
    if scale is None:
        scale = auto_scale(recorded) if setting.feature_map != "linear" else 1.0
    feature_map = FeatureMap(setting.feature_map, scale)
    d = recorded.neutral.shape[-1]
    config = FitConfig(centre=setting.centre, fixed_k=d, svd="exact")
    layers = {}
    for axis, layer in enumerate(recorded.layers):
        neutral, positive, negative = (
            feature_map.forward(array[:, axis].astype(np.float64))
            for array in (recorded.neutral, recorded.positive, recorded.negative)
        )
        moments = LayerMoments.from_rows(neutral, positive, negative, keep_rows=False)
        mean = moments.means()[0] if setting.centre else None
        found = spectra(layer, moments, config, "exact")
        pos, neg = found["pos"], found["neg"]
        layers[layer] = LayerSpectra(
            basis_pos=pos.U.astype(np.float32),
            basis_neg=neg.U.astype(np.float32),
            s_pos=pos.singular_values,
            s_neg=neg.singular_values,
            total_pos=pos.total_energy,
            total_neg=neg.total_energy,
            mean=None if mean is None else mean.astype(np.float32),
        )
    return StudyFit(layers=layers, feature_map=feature_map, centred=setting.centre)


def _random_basis(d: int, k: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, k)))
    return (q * np.sign(np.diag(r))).astype(np.float32)  # sign fix: a uniform (Haar) draw


def directions(
    variant: Variant, fit: StudyFit, layer: int, ranks: Mapping[int, tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """``(U_pos, U_neg)`` of one layer for SEA or a control, with SEA's k+ and k-."""
    entry = fit.layers[layer]
    k_pos, k_neg = ranks[layer]
    if variant.control is None:
        return entry.basis_pos[:, :k_pos], entry.basis_neg[:, :k_neg]
    if variant.control == "swapped":
        return entry.basis_neg[:, :k_pos], entry.basis_pos[:, :k_neg]
    rng = np.random.default_rng([variant.seed, layer])
    d = entry.basis_pos.shape[0]
    return _random_basis(d, k_pos, rng), _random_basis(d, k_neg, rng)


def edited_layers(setting: Setting, n_layers: int) -> tuple[int, ...]:
    """The model layers ``setting`` edits (its layer spec over the model's layers)."""
    return resolve_layers(setting.layers, n_layers)


def build_edit(variant: Variant, fit: StudyFit, model: ModelInfo, source: str) -> SeaEdit:
    """The :class:`SeaEdit` of ``variant``: only the layers its setting edits, its recipe."""
    setting = variant.setting
    chosen = edited_layers(setting, model.n_layers)
    ranks = fit.ranks(setting.positive_energy, setting.negative_energy)
    tensors: dict[str, torch.Tensor] = {}
    for layer in chosen:
        u_pos, u_neg = directions(variant, fit, layer, ranks)
        tensors[f"layers.{layer}.U_pos"] = torch.from_numpy(np.ascontiguousarray(u_pos))
        tensors[f"layers.{layer}.U_neg"] = torch.from_numpy(np.ascontiguousarray(u_neg))
        mean = fit.layers[layer].mean
        if mean is not None:
            tensors[f"layers.{layer}.mean"] = torch.from_numpy(mean)
    recipe = setting.recipe(fit.feature_map.scale)
    fields = {
        "model_id": model.model_id,
        "architecture": model.architecture,
        "d_model": model.d_model,
        "n_model_layers": model.n_layers,
        "site": setting.site,
        "site_template": None,
        "layers": list(chosen),
        "combine": setting.combine,
        "feature_map": fit.feature_map.to_dict(),
        "centred": setting.centre,
        "recipe": recipe.to_dict(),
    }
    edit = edit_from_fields(fields, tensors, source)
    return edit


def check_space(settings: Sequence[Setting], n_layers: int) -> None:
    """Refuse settings whose layers do not exist in the model, before any work."""
    for setting in settings:
        try:
            resolve_layers(setting.layers, n_layers)
        except ConfigError as error:
            raise ConfigError(f"setting {setting.name}: {error}") from None
