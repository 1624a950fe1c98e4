"""``fit_store`` end to end on synthetic stores, against the numpy reference in fit_reference.py:
same k per layer, U U^T within 1e-8 (exact paths) or 1e-3 relative Frobenius (randomized)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fit_reference import projection_gap, reference_fit, relative_projection_gap

from sea_dist.config import FitConfig
from sea_dist.errors import FitError, StoreError
from sea_dist.fit import FitResult, fit_store


def assert_matches_reference(result, store, config: FitConfig, tolerance: float, relative: bool):
    for index, projection in enumerate(result.layers):
        assert projection.layer == store.layers[index]
        ref = reference_fit(
            store.data,
            index,
            centre=config.centre,
            k_pos=config.positive_energy,
            k_neg=config.negative_energy,
            fixed_k=config.fixed_k,
            feature_map=config.feature_map,
            scale=config.feature_map_scale,
        )
        assert (projection.k_pos, projection.k_neg) == (ref.k_pos, ref.k_neg)
        gap = relative_projection_gap if relative else projection_gap
        assert gap(projection.U_pos, ref.U_pos) < tolerance
        assert gap(projection.U_neg, ref.U_neg) < tolerance
        assert projection.energy_pos == pytest.approx(ref.energy_pos, rel=1e-6)
        assert projection.energy_neg == pytest.approx(ref.energy_neg, rel=1e-6)
        assert projection.signature == pytest.approx(ref.signature, rel=1e-9)
        if config.centre:
            np.testing.assert_allclose(projection.mean, ref.mean, rtol=1e-10, atol=1e-12)
        else:
            assert projection.mean is None
        # Exact paths give the spectrum (qr: its N leading values); randomized its top k.
        m = projection.k_pos if relative else min(projection.S_pos.size, ref.S_pos.size)
        np.testing.assert_allclose(projection.S_pos[:m], ref.S_pos[:m], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("centre", [True, False])
@pytest.mark.parametrize("ratios", [(0.9, 0.8), (0.99, 0.95)])
def test_exact_path(make_store, centre: bool, ratios: tuple[float, float]) -> None:
    store = make_store(n=300, d=40)
    config = FitConfig(centre=centre, positive_energy=ratios[0], negative_energy=ratios[1])
    result = fit_store(store.url, config)
    assert {p.svd_path for p in result.layers} == {"exact"}
    assert_matches_reference(result, store, config, 1e-8, relative=False)


@pytest.mark.parametrize("centre", [True, False])
def test_thin_qr_path(make_store, centre: bool) -> None:
    store = make_store(n=36, d=90, rows_per_shard=8)
    config = FitConfig(centre=centre, positive_energy=0.9, negative_energy=0.8)
    result = fit_store(store.url, config)  # auto picks qr because N < d
    assert {p.svd_path for p in result.layers} == {"qr"}
    assert result.layers[0].S_pos.size == 36
    assert_matches_reference(result, store, config, 1e-8, relative=False)


@pytest.mark.parametrize("centre", [True, False])
def test_randomized_path(make_store, centre: bool) -> None:
    store = make_store(n=400, d=160, rows_per_shard=32, noise=0.02)
    config = FitConfig(centre=centre, svd="randomized", positive_energy=0.9, negative_energy=0.9)
    result = fit_store(store.url, config)
    assert {p.svd_path for p in result.layers} == {"randomized"}
    assert_matches_reference(result, store, config, 1e-3, relative=True)


@pytest.mark.parametrize(
    ("svd", "n", "d"), [("exact", 120, 30), ("qr", 30, 60), ("randomized", 300, 128)]
)
def test_fixed_k_on_every_path(make_store, svd: str, n: int, d: int) -> None:
    store = make_store(n=n, d=d, noise=0.02)
    config = FitConfig(svd=svd, fixed_k=3)  # type: ignore[arg-type]
    result = fit_store(store.url, config)
    assert {(p.k_pos, p.k_neg, p.svd_path) for p in result.layers} == {(3, 3, svd)}
    tolerance, relative = (1e-3, True) if svd == "randomized" else (1e-8, False)
    assert_matches_reference(result, store, config, tolerance, relative)


@pytest.mark.parametrize(("name", "scale"), [("tanh", 2.0), ("elu", 1.0), ("sqexp", 3.0)])
def test_phi_sea_feature_maps(make_store, name: str, scale: float) -> None:
    store = make_store(n=200, d=24)
    config = FitConfig(feature_map=name, feature_map_scale=scale, positive_energy=0.9)  # type: ignore[arg-type]
    result = fit_store(store.url, config)
    assert result.feature_map.to_dict() == {"name": name, "scale": scale}
    assert_matches_reference(result, store, config, 1e-8, relative=False)


def test_exact_and_qr_agree_with_each_other(make_store) -> None:
    store = make_store(n=40, d=64, rows_per_shard=8)
    config = FitConfig(positive_energy=0.9, negative_energy=0.9)
    exact = fit_store(store.url, FitConfig(svd="exact", positive_energy=0.9, negative_energy=0.9))
    qr = fit_store(store.url, config)
    for a, b in zip(exact.layers, qr.layers):
        assert (a.k_pos, a.k_neg) == (b.k_pos, b.k_neg)
        assert projection_gap(a.U_pos, b.U_pos) < 1e-8
        assert projection_gap(a.U_neg, b.U_neg) < 1e-8


def test_centring_changes_the_fit_on_a_mean_dominated_store(make_store) -> None:
    # DESIGN.md: uncentred, a large shared mean dominates Omega and k collapses to 1.
    store = make_store(n=200, d=24, mean_scale=20.0)
    uncentred = fit_store(store.url, FitConfig(centre=False, positive_energy=0.99))
    centred = fit_store(store.url, FitConfig(centre=True, positive_energy=0.99))
    assert all(p.k_pos == 1 for p in uncentred.layers)
    assert all(p.k_pos > 1 for p in centred.layers)


def test_writes_the_fit_folder(make_store, tmp_path) -> None:
    store = make_store(n=100, d=20)
    out = tmp_path / "fit"
    result = fit_store(store.url, FitConfig(positive_energy=0.9), out=out)
    data = json.loads((out / "fit.json").read_text())
    assert data["svd_path"] == {"1": "exact", "3": "exact"}
    assert data["store"]["url"] == store.url and data["store"]["attrs"]["d_model"] == 20
    assert [entry["k_pos"] for entry in data["layers"]] == [p.k_pos for p in result.layers]
    loaded = FitResult.load(out)
    assert loaded.layer(3).k_neg == result.layer(3).k_neg
    assert projection_gap(loaded.layer(1).U_pos, result.layer(1).U_pos) < 1e-5  # float32


def test_refuses_a_non_empty_out_before_computing(make_store, tmp_path) -> None:
    store = make_store(n=50, d=10)
    out = tmp_path / "fit"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FitError, match="--overwrite"):
        fit_store(store.url, FitConfig(), out=out)
    fit_store(store.url, FitConfig(), out=out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["fit.json", "projections.safetensors"]


def test_incomplete_store_is_refused(make_store) -> None:
    store = make_store(n=64, d=10, rows_per_shard=16, complete=False)
    with pytest.raises(StoreError, match="pending"):
        fit_store(store.url, FitConfig())


def test_missing_store_is_refused(tmp_path) -> None:
    with pytest.raises(StoreError, match="collect"):
        fit_store(str(tmp_path / "nothing.zarr"), FitConfig())


def test_bad_sizes_are_refused(make_store) -> None:
    store = make_store(n=20, d=50)
    with pytest.raises(FitError, match="fixed_k"):
        fit_store(store.url, FitConfig(fixed_k=21))  # the qr route has rank <= N
    with pytest.raises(FitError, match="fewer rows"):
        fit_store(make_store(n=60, d=20).url, FitConfig(svd="qr"))
    with pytest.raises(FitError, match="at least 2"):
        fit_store(make_store(n=1, d=8, rows_per_shard=1).url, FitConfig())


def test_constant_activations_are_refused(tmp_path) -> None:
    from fit_reference import write_store

    zeros = {r: np.zeros((10, 1, 6), np.float32) for r in ("neutral", "positive", "negative")}
    url = str(tmp_path / "zeros.zarr")
    write_store(url, zeros, (0,), rows_per_shard=5)
    with pytest.raises(FitError, match="energy"):
        fit_store(url, FitConfig())


def test_full_energy_keeps_the_numerical_rank(make_store) -> None:
    store = make_store(n=30, d=12)
    result = fit_store(store.url, FitConfig(positive_energy=1.0, negative_energy=1.0))
    # Centred rows of N=30 > d: every direction of the 12-d space carries some energy.
    assert all(p.k_pos == 12 and p.energy_pos == pytest.approx(1.0) for p in result.layers)


def test_fit_a_subset_of_layers(make_store) -> None:
    store = make_store(n=100, d=16, layers=(0, 2, 5))
    config = FitConfig(positive_energy=0.9, negative_energy=0.9)
    result = fit_store(store.url, config, layers=[5, 0])
    assert [p.layer for p in result.layers] == [0, 5]  # store order
    full = fit_store(store.url, config)
    assert projection_gap(result.layer(5).U_pos, full.layer(5).U_pos) < 1e-10
    ref = reference_fit(store.data, 2, k_pos=0.9, k_neg=0.9)
    assert fit_store(store.url, config, layers=[2]).layer(2).k_neg == ref.k_neg
    with pytest.raises(FitError, match="subset"):
        fit_store(store.url, config, layers=[1])


def test_layer_groups_bound_the_pass_results() -> None:
    from sea_dist.fit.pipeline import layer_groups

    assert layer_groups([0, 1, 2, 3, 4], result_bytes=100, budget=10_000) == [(0, 1, 2, 3, 4)]
    assert layer_groups([0, 1, 2, 3, 4], result_bytes=100, budget=400) == [(0, 1), (2, 3), (4,)]
    # A layer bigger than the budget still goes through, alone.
    assert layer_groups([7, 9], result_bytes=10**9, budget=10) == [(7,), (9,)]


@pytest.mark.parametrize("svd", ["exact", "qr"])
def test_one_layer_per_pass_gives_the_same_fit(
    make_store, monkeypatch: pytest.MonkeyPatch, svd: str
) -> None:
    import sea_dist.fit.pipeline as pipeline
    import sea_dist.fit.streaming as streaming

    store = make_store(n=16, d=24, layers=(0, 2, 5), rows_per_shard=4)
    config = FitConfig(svd=svd, positive_energy=0.9, negative_energy=0.9)
    together = fit_store(store.url, config)
    passes: list[object] = []
    original = streaming.compute_moments

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        passes.append(kwargs["layers"])
        return original(*args, **kwargs)

    # A memory budget that holds one layer's statistics at a time: one pass per layer.
    monkeypatch.setattr(pipeline, "memory_budget", lambda: 2 * 8 * 24 * 24 * 3)
    monkeypatch.setattr(streaming, "compute_moments", counted)
    apart = fit_store(store.url, config)
    assert passes == [(0,), (2,), (5,)]
    for a, b in zip(together.layers, apart.layers, strict=True):
        assert (a.layer, a.k_pos, a.k_neg) == (b.layer, b.k_pos, b.k_neg)
        assert projection_gap(a.U_pos, b.U_pos) < 1e-10
        assert projection_gap(a.U_neg, b.U_neg) < 1e-10
