"""Full-spectrum fits, the ranks a setting's K picks and the controls' directions, against an
independent numpy reference (moved from the two-fold study's own fit code, which this replaced).

The synthetic recording has N = 40 rows, 3 recorded layers (model layers 1, 3, 4) and d = 16. The
neutral rows carry a planted direction ``v`` shared by every layer; the positive rows are a rank-2
map of the neutral ones (``v`` and ``w``), the negative rows a rank-3 map, so centred SEA keeps
k+ = 2 and k- = 3; every array also carries a large common mean, which makes the uncentred
cross-covariances rank-1 dominated (k = 1), as DESIGN.md section 1 warns for the residual site.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sea_dist.edit.projections import SeaEdit
from sea_dist.studies.fits import (
    ModelInfo,
    Recorded,
    StudyFit,
    auto_scale,
    build_edit,
    directions,
    fit_recorded,
)
from sea_dist.studies.space import Setting, Variant
from sea_dist.studies.twofold_report import k_table

N, D = 40, 16
LAYERS = (1, 3, 4)
# a 5-layer model: "last-2" is layers 3 and 4, both recorded
INFO = ModelInfo(model_id="synthetic", architecture="llama", d_model=D, n_layers=5)


def _unit(rng: np.random.Generator, d: int) -> np.ndarray:
    x = rng.standard_normal(d)
    return x / np.linalg.norm(x)


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    rng = np.random.default_rng(0)
    v = _unit(rng, D)  # the planted direction shared by all layers
    mean = 30.0 * _unit(rng, D)
    neutral, positive, negative = (np.zeros((N, len(LAYERS), D), np.float32) for _ in range(3))
    for axis in range(len(LAYERS)):
        z = rng.standard_normal(N)
        x = rng.standard_normal((N, D)) + z[:, None] * v
        w = _unit(rng, D)
        w -= (w @ v) * v
        w /= np.linalg.norm(w)
        a_pos = 3.0 * np.outer(v, v) + 2.0 * np.outer(w, w)
        q, _ = np.linalg.qr(rng.standard_normal((D, 3)))
        a_neg = q @ np.diag([3.0, 2.5, 2.0]) @ q.T
        neutral[:, axis] = x + mean
        positive[:, axis] = x @ a_pos + 0.01 * rng.standard_normal((N, D)) + mean
        negative[:, axis] = x @ a_neg + 0.01 * rng.standard_normal((N, D)) + mean
    return Recorded(LAYERS, neutral, positive, negative)


def _reference(x: np.ndarray, y: np.ndarray, centre: bool, ratio: float) -> tuple:
    """``(U, s, k)`` of ``X^T Y / N`` (centred: both minus their column means), by hand."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    if centre:
        x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    omega = x.T @ y / x.shape[0]
    u, s, _ = np.linalg.svd(omega)
    energy = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.argmax(energy >= ratio)) + 1
    return u, s, k


def _projector(u: np.ndarray) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    return u @ u.T


def _same_span(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(_projector(a), _projector(b), atol=1e-5)


def _sea(fit: StudyFit, setting: Setting, layer: int) -> tuple[np.ndarray, np.ndarray]:
    ranks = fit.ranks(setting.positive_energy, setting.negative_energy)
    return directions(Variant(setting), fit, layer, ranks)


@pytest.mark.parametrize("centre", [True, False], ids=["centred", "uncentred"])
def test_fit_matches_the_reference(recorded: Recorded, centre: bool) -> None:
    fit = fit_recorded(recorded, Setting("s", centre=centre))
    assert sorted(fit.layers) == list(LAYERS)
    assert fit.feature_map.name == "linear"
    assert fit.centred is centre
    ranks = fit.ranks(0.99, 0.99)
    energies = fit.energies(0.99, 0.99)
    for axis, layer in enumerate(LAYERS):
        entry = fit.layers[layer]
        x = recorded.neutral[:, axis]
        for index, (sign, other) in enumerate(
            (("pos", recorded.positive), ("neg", recorded.negative))
        ):
            u, s, k = _reference(x, other[:, axis], centre, 0.99)
            basis = getattr(entry, f"basis_{sign}")
            assert basis.shape == (D, D)  # the full basis: any K applies later without a refit
            assert basis.dtype == np.float32
            np.testing.assert_allclose(getattr(entry, f"s_{sign}"), s, rtol=1e-9, atol=1e-9 * s[0])
            assert ranks[layer][index] == k
            captured = float(np.sum(s[:k] ** 2) / np.sum(s**2))
            assert energies[layer][index] == pytest.approx(captured, rel=1e-9)
            _same_span(basis[:, :k], u[:, :k])
        if centre:
            assert entry.mean is not None
            np.testing.assert_allclose(entry.mean, x.astype(np.float64).mean(axis=0), rtol=1e-6)
        else:
            assert entry.mean is None


def test_planted_ranks(recorded: Recorded) -> None:
    centred = Setting("c")
    uncentred = Setting("u", centre=False)
    assert k_table(fit_recorded(recorded, centred), centred) == {
        "layer": list(LAYERS),
        "k_pos": [2, 2, 2],
        "k_neg": [3, 3, 3],
    }
    # the common mean dominates the uncentred cross-covariances: k collapses to 1
    assert k_table(fit_recorded(recorded, uncentred), uncentred) == {
        "layer": list(LAYERS),
        "k_pos": [1, 1, 1],
        "k_neg": [1, 1, 1],
    }


def test_centred_and_uncentred_bases_differ(recorded: Recorded) -> None:
    centred = fit_recorded(recorded, Setting("c")).layers[LAYERS[0]]
    uncentred = fit_recorded(recorded, Setting("u", centre=False)).layers[LAYERS[0]]
    top_c, top_u = centred.basis_pos[:, 0], uncentred.basis_pos[:, 0]
    assert abs(float(top_c @ top_u)) < 0.5
    assert uncentred.s_pos[0] > 10 * centred.s_pos[0]


def test_energy_ratios_are_the_settings(recorded: Recorded) -> None:
    setting = Setting("c", positive_energy=0.5, negative_energy=0.999999)
    fit = fit_recorded(recorded, setting)
    table = k_table(fit, setting)
    for axis, layer in enumerate(LAYERS):
        assert table["layer"][axis] == layer
        x = recorded.neutral[:, axis]
        assert table["k_pos"][axis] == _reference(x, recorded.positive[:, axis], True, 0.5)[2]
        k_neg = _reference(x, recorded.negative[:, axis], True, 0.999999)[2]
        assert table["k_neg"][axis] == k_neg
    assert table["k_pos"][0] == 1
    # the same fit serves every K: the ranks differ, the spectra are shared
    assert fit.ranks(0.99, 0.99)[LAYERS[0]] == (2, 3)
    kept, removed = _sea(fit, setting, LAYERS[0])
    assert kept.shape == (D, 1) and removed.shape == (D, table["k_neg"][0])


def test_sea_directions_are_the_top_k(recorded: Recorded) -> None:
    setting = Setting("c")
    fit = fit_recorded(recorded, setting)
    for axis, layer in enumerate(LAYERS):
        x = recorded.neutral[:, axis]
        u_pos_ref, _, k_pos = _reference(x, recorded.positive[:, axis], True, 0.99)
        u_neg_ref, _, k_neg = _reference(x, recorded.negative[:, axis], True, 0.99)
        u_pos, u_neg = _sea(fit, setting, layer)
        _same_span(u_pos, u_pos_ref[:, :k_pos])
        _same_span(u_neg, u_neg_ref[:, :k_neg])


def test_swapped_control_exchanges_roles_with_seas_ranks(recorded: Recorded) -> None:
    setting = Setting("c")
    fit = fit_recorded(recorded, setting)
    ranks = fit.ranks(0.99, 0.99)
    for axis, layer in enumerate(LAYERS):
        x = recorded.neutral[:, axis]
        u_pos_ref, _, k_pos = _reference(x, recorded.positive[:, axis], True, 0.99)
        u_neg_ref, _, k_neg = _reference(x, recorded.negative[:, axis], True, 0.99)
        assert k_pos != k_neg  # so a rank mix-up would show in the shapes
        kept, removed = directions(Variant(setting, "swapped"), fit, layer, ranks)
        assert kept.shape == (D, k_pos)
        assert removed.shape == (D, k_neg)
        _same_span(kept, u_neg_ref[:, :k_pos])  # top k+ of Omega-
        _same_span(removed, u_pos_ref[:, :k_neg])  # top k- of Omega+


def test_random_control(recorded: Recorded) -> None:
    setting = Setting("c")
    fit = fit_recorded(recorded, setting)
    ranks = fit.ranks(0.99, 0.99)
    layer = LAYERS[1]
    k_pos, k_neg = ranks[layer]
    first = directions(Variant(setting, "random", 0), fit, layer, ranks)
    again = directions(Variant(setting, "random", 0), fit, layer, ranks)
    other = directions(Variant(setting, "random", 1), fit, layer, ranks)
    next_layer = directions(Variant(setting, "random", 0), fit, LAYERS[2], ranks)
    for u, k in zip(first, (k_pos, k_neg)):
        assert u.shape == (D, k)
        assert u.dtype == np.float32
        np.testing.assert_allclose(u.T @ u, np.eye(k), atol=1e-5)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first, other):
        assert not np.allclose(_projector(a), _projector(b), atol=1e-3)
    assert not np.allclose(_projector(first[0]), _projector(next_layer[0]), atol=1e-3)
    # and it is not SEA's subspace
    assert not np.allclose(
        _projector(first[0]),
        _projector(directions(Variant(setting), fit, layer, ranks)[0]),
        atol=1e-3,
    )


def test_build_edit_carries_the_setting(recorded: Recorded) -> None:
    setting = Setting(
        "m", site="mlp", combine="average", layers="last-2", alpha=0.5, positions="skip-first"
    )
    fit = fit_recorded(recorded, setting)
    variant = Variant(setting, "swapped")
    edit = build_edit(variant, fit, INFO, "test:m")
    assert isinstance(edit, SeaEdit)
    assert (edit.site, edit.combine, edit.centred) == ("mlp", "average", True)
    assert (edit.feature_map, edit.feature_map_scale) == ("linear", 1.0)
    assert (edit.model_id, edit.architecture, edit.d_model, edit.n_model_layers) == (
        "synthetic",
        "llama",
        D,
        5,
    )
    assert edit.source == "test:m"
    assert sorted(edit.layers) == [3, 4]  # only the setting's layers: last 2 of 5
    assert edit.recipe is not None
    assert (edit.recipe.alpha, edit.recipe.positions, edit.recipe.layers) == (
        0.5,
        "skip-first",
        "last-2",
    )
    assert (edit.recipe.positive_energy, edit.recipe.negative_energy) == (0.99, 0.99)
    ranks = fit.ranks(setting.positive_energy, setting.negative_energy)
    for layer in (3, 4):
        proj = edit.layers[layer]
        kept, removed = directions(variant, fit, layer, ranks)
        torch.testing.assert_close(proj.u_pos, torch.from_numpy(np.ascontiguousarray(kept)))
        torch.testing.assert_close(proj.u_neg, torch.from_numpy(np.ascontiguousarray(removed)))
        mean = fit.layers[layer].mean
        assert proj.mean is not None and mean is not None
        np.testing.assert_allclose(proj.mean.numpy(), mean, rtol=1e-6)


def test_build_edit_uncentred_has_no_means(recorded: Recorded) -> None:
    setting = Setting("u", centre=False, layers=LAYERS)
    edit = build_edit(Variant(setting), fit_recorded(recorded, setting), INFO, "test:u")
    assert edit.centred is False
    assert edit.site == "residual"
    assert edit.combine == "l2"
    assert sorted(edit.layers) == list(LAYERS)
    assert all(proj.mean is None for proj in edit.layers.values())


def test_tanh_with_auto_scale(recorded: Recorded) -> None:
    expected_scale = float(np.quantile(np.abs(recorded.neutral), 0.999))
    assert auto_scale(recorded) == pytest.approx(expected_scale, rel=1e-6)
    setting = Setting("t", feature_map="tanh", layers=LAYERS)
    fit = fit_recorded(recorded, setting)
    assert fit.feature_map.name == "tanh"
    assert fit.feature_map.scale == pytest.approx(expected_scale, rel=1e-6)
    edit = build_edit(Variant(setting), fit, INFO, "test:t")
    assert edit.feature_map == "tanh"
    assert edit.feature_map_scale == pytest.approx(expected_scale, rel=1e-6)
    # the fit runs on tanh(h / s)
    scale = fit.feature_map.scale
    ranks = fit.ranks(0.99, 0.99)
    for axis, layer in enumerate(LAYERS):
        x = np.tanh(recorded.neutral[:, axis].astype(np.float64) / scale)
        y = np.tanh(recorded.positive[:, axis].astype(np.float64) / scale)
        u, s, k = _reference(x, y, True, 0.99)
        entry = fit.layers[layer]
        assert ranks[layer][0] == k
        np.testing.assert_allclose(entry.s_pos, s, rtol=1e-9, atol=1e-9 * s[0])
        _same_span(entry.basis_pos[:, :k], u[:, :k])
        assert entry.mean is not None
        np.testing.assert_allclose(entry.mean, x.mean(axis=0), rtol=1e-6)


def test_tanh_with_a_fixed_scale(recorded: Recorded) -> None:
    setting = Setting("t", feature_map="tanh", feature_map_scale=2.5, layers=LAYERS)
    fit = fit_recorded(recorded, setting)
    assert fit.feature_map.scale == 2.5
    assert build_edit(Variant(setting), fit, INFO, "t").feature_map_scale == 2.5
