"""The fit on a torch device (sea_dist/fit/torch_ops.py), checked against the numpy path.

No GPU here: the device code runs with torch on the CPU device (``torch-cpu``), which exercises
the same torch calls; tests that need a real CUDA device are skipped where none is visible.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fit_reference import projection_gap, relative_projection_gap
from test_svd import power_law

from sea_dist.config import FitConfig
from sea_dist.errors import ConfigError, FitError
from sea_dist.feature_maps import phi
from sea_dist.fit import fit_store
from sea_dist.fit.covariance import LayerMoments
from sea_dist.fit.projections import fit_layer
from sea_dist.fit.schedulers import open_scheduler
from sea_dist.fit.streaming import compute_moments
from sea_dist.fit.svd import canonical_signs, exact_svd, randomized_svd, use_device
from sea_dist.fit.torch_ops import TORCH_CPU, DeviceMoments, resolve_device, store_moments
from sea_dist.store import ActivationStore

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (none visible on this machine)"
)


def blocks(seed: int, n: int, d: int, dtype: type = np.float64) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, d))
    return [(shared + rng.standard_normal((n, d)) + 0.5).astype(dtype) for _ in range(3)]


def host_moments(parts: list[list[np.ndarray]]) -> LayerMoments:
    moments = LayerMoments.empty(parts[0][0].shape[1], keep_rows=False)
    for neutral, positive, negative in parts:
        moments.add_rows(*(np.asarray(b, dtype=np.float64) for b in (neutral, positive, negative)))
    return moments


def assert_moments_close(found: LayerMoments, expected: LayerMoments, rtol: float) -> None:
    assert found.n_rows == expected.n_rows
    for name in ("sum_neutral", "sum_positive", "sum_negative", "cross_pos", "cross_neg"):
        a, b = getattr(found, name), getattr(expected, name)
        assert a.dtype == np.float64 and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max(), err_msg=name)


def test_device_moments_equal_the_numpy_moments() -> None:
    parts = [blocks(seed, 50, 24) for seed in range(3)]
    device = DeviceMoments(24, CPU)
    for part in parts:
        device.add_rows(*part)
    assert_moments_close(device.to_moments(), host_moments(parts), rtol=1e-12)


def test_device_moments_take_float32_rows_and_a_feature_map() -> None:
    part = blocks(1, 40, 16, np.float32)
    device = DeviceMoments(16, CPU)
    device.add_rows(*(device.put(b, "tanh", 0.5) for b in part))
    mapped = [phi(b.astype(np.float64), "tanh", 0.5) for b in part]  # the numpy path's map
    assert_moments_close(device.to_moments(), host_moments([mapped]), rtol=1e-12)


def test_mixed_precision_moments_stay_close_to_float64() -> None:
    parts = [blocks(seed, 200, 32) for seed in range(2)]
    device = DeviceMoments(32, CPU, precision="mixed")
    for part in parts:
        device.add_rows(*part)
    found, expected = device.to_moments(), host_moments(parts)
    assert found.cross_pos is not None and expected.cross_pos is not None
    assert found.cross_pos.dtype == np.float64
    # float32 products: about 1e-7 relative per product, well inside 1e-5 of the largest entry.
    assert_moments_close(found, expected, rtol=1e-5)
    np.testing.assert_allclose(found.sum_neutral, expected.sum_neutral, rtol=1e-12)
    with pytest.raises(FitError, match="precision: expected float64 or mixed"):
        DeviceMoments(4, CPU, precision="half")  # type: ignore[arg-type]


def test_mixed_precision_keeps_centring_digits_under_a_large_shared_mean() -> None:
    parts = [[b + 300.0 for b in blocks(seed, 200, 32)] for seed in range(2)]
    device = DeviceMoments(32, CPU, precision="mixed")
    for part in parts:
        device.add_rows(*part)
    found, expected = device.to_moments(), host_moments(parts)
    # The centred Omega is ~1e5 times smaller than the raw products here: without the shift,
    # float32 products would leave ~1e-2 relative error in it.
    a = found.cross_covariance("pos", centre=True)
    b = expected.cross_covariance("pos", centre=True)
    assert np.abs(a - b).max() < 1e-5 * np.abs(b).max()


def test_store_moments_equal_the_dask_pass(make_store) -> None:
    store = make_store(n=96, d=20, layers=(1, 3), rows_per_shard=16)
    spec = ActivationStore.open(store.url).spec
    with open_scheduler("synchronous") as scheduler:
        expected = compute_moments(store.url, spec, scheduler, map_name="elu", chunk_rows=32)
    calls: list[int] = []
    found = store_moments(
        store.url, spec, CPU, map_name="elu", chunk_rows=32, on_block=lambda: calls.append(1)
    )
    assert sorted(found) == [1, 3] and len(calls) == 2 * 3  # 96 rows in blocks of 32, 2 layers
    for layer in (1, 3):
        assert_moments_close(found[layer], expected[layer], rtol=1e-12)


def test_canonical_signs_fix_each_column() -> None:
    u = np.array([[0.6, -0.1], [-0.8, -0.9], [0.0, 0.4]])
    fixed = canonical_signs(u)
    np.testing.assert_array_equal(fixed, u * np.array([-1.0, -1.0]))
    assert canonical_signs(np.empty((3, 0))).shape == (3, 0)


@pytest.mark.parametrize("ratio", [0.5, 0.99])
def test_exact_svd_on_the_device_equals_numpy(ratio: float) -> None:
    omega = power_law(80, rank=20)
    host = exact_svd(omega, ratio)
    device = exact_svd(omega, ratio, device=CPU)
    assert (device.k, device.path) == (host.k, "exact")
    np.testing.assert_allclose(device.singular_values, host.singular_values, rtol=1e-10, atol=1e-13)
    # Same sign convention on both: the vectors agree entry by entry, not only up to sign.
    np.testing.assert_allclose(device.U, host.U, atol=1e-9)
    assert device.energy == pytest.approx(host.energy, rel=1e-12)


@pytest.mark.parametrize(
    ("rank", "ratio", "fixed_k"), [(30, 0.9, None), (60, 0.99, None), (8, 0.9, 5)]
)
def test_randomized_svd_on_the_device_equals_numpy(
    rank: int, ratio: float, fixed_k: int | None
) -> None:
    omega = power_law(300, rank=rank)
    host = randomized_svd(omega, ratio, fixed_k, seed=3)
    device = randomized_svd(omega, ratio, fixed_k, seed=3, device=CPU)
    assert (device.k, device.path) == (host.k, host.path) and host.path == "randomized"
    k, top = host.k, host.singular_values[0]
    np.testing.assert_allclose(device.singular_values[:k], host.singular_values[:k], rtol=1e-9)
    # The sketch's values beyond k sit in the noise floor, where rounding differences between
    # BLAS builds move them by ~1e-7 of s_1 (they never choose k).
    m = min(device.singular_values.size, host.singular_values.size)
    np.testing.assert_allclose(
        device.singular_values[:m], host.singular_values[:m], atol=1e-6 * top
    )
    assert projection_gap(device.U, host.U) < 1e-8
    # Up to sign, column by column (the sign convention makes it exact here).
    np.testing.assert_allclose(np.abs(device.U), np.abs(host.U), atol=1e-7)
    np.testing.assert_allclose(device.U, host.U, atol=1e-7)


def test_randomized_hand_over_to_exact_stays_on_the_device() -> None:
    omega = power_law(64, rank=60, floor=0.5)
    host = randomized_svd(omega, 0.99, seed=0)
    device = randomized_svd(omega, 0.99, seed=0, device=CPU)
    assert host.path == device.path == "exact" and host.k == device.k
    np.testing.assert_allclose(device.U, host.U, atol=1e-9)


@pytest.mark.parametrize("svd", ["exact", "randomized"])
def test_fit_layer_inside_use_device_equals_numpy(svd: str) -> None:
    parts = [blocks(seed, 120, 48) for seed in range(2)]
    config = FitConfig(positive_energy=0.9, negative_energy=0.8, svd=svd)  # type: ignore[arg-type]
    host = fit_layer(2, host_moments(parts), config, svd)  # type: ignore[arg-type]
    with use_device(CPU):
        device = fit_layer(2, host_moments(parts), config, svd)  # type: ignore[arg-type]
    assert (device.k_pos, device.k_neg) == (host.k_pos, host.k_neg)
    assert relative_projection_gap(device.U_pos, host.U_pos) < 1e-8
    assert relative_projection_gap(device.U_neg, host.U_neg) < 1e-8


@pytest.mark.parametrize(("n", "d", "svd"), [(200, 40, "exact"), (300, 64, "randomized")])
def test_fit_store_on_torch_cpu_equals_the_numpy_fit(make_store, n: int, d: int, svd: str) -> None:
    store = make_store(n=n, d=d)
    config = FitConfig(positive_energy=0.9, negative_energy=0.8, svd=svd)  # type: ignore[arg-type]
    host = fit_store(store.url, config)
    device = fit_store(store.url, config, device=TORCH_CPU)
    for a, b in zip(host.layers, device.layers, strict=True):
        assert (a.layer, a.k_pos, a.k_neg, a.svd_path) == (b.layer, b.k_pos, b.k_neg, b.svd_path)
        np.testing.assert_allclose(b.U_pos, a.U_pos, atol=1e-8)
        np.testing.assert_allclose(b.U_neg, a.U_neg, atol=1e-8)
        np.testing.assert_allclose(b.S_pos, a.S_pos, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b.mean, a.mean, rtol=1e-12)
        assert b.signature == pytest.approx(a.signature, rel=1e-12)


def test_fit_store_mixed_precision_on_torch_cpu_keeps_the_projections(make_store) -> None:
    store = make_store(n=200, d=40)
    host = fit_store(store.url, FitConfig(svd="exact"))
    mixed = fit_store(store.url, FitConfig(svd="exact", precision="mixed"), device=TORCH_CPU)
    for a, b in zip(host.layers, mixed.layers, strict=True):
        assert (a.k_pos, a.k_neg) == (b.k_pos, b.k_neg)
        assert relative_projection_gap(b.U_pos, a.U_pos) < 1e-4


def test_thin_qr_route_stays_on_the_host_with_a_device(make_store) -> None:
    store = make_store(n=24, d=60, rows_per_shard=8)
    host = fit_store(store.url, FitConfig())
    device = fit_store(store.url, FitConfig(), device=TORCH_CPU)
    assert {p.svd_path for p in device.layers} == {"qr"}
    for a, b in zip(host.layers, device.layers, strict=True):
        np.testing.assert_allclose(b.U_pos, a.U_pos, atol=1e-10)


def test_cpu_and_auto_without_cuda_resolve_to_numpy() -> None:
    assert resolve_device("cpu") is None
    assert resolve_device(TORCH_CPU) == CPU
    if not torch.cuda.is_available():
        assert resolve_device("auto") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_one_line_config_error(name: str) -> None:
    with pytest.raises(ConfigError) as error:
        resolve_device(name)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"fit.device: expected a visible CUDA device {name}, found no CUDA")
    assert "torch.cuda.is_available() is False" in message and "set fit.device to cpu" in message


def test_unknown_device_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="fit.device: expected cpu, auto, cuda or cuda:N"):
        resolve_device("cuda:x")
    # The internal name is not a config value: users cannot select it.
    with pytest.raises(ConfigError, match="device: expected cpu, auto, cuda or cuda:N"):
        FitConfig(device=TORCH_CPU).validate()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback where CUDA is missing")
def test_fit_store_with_auto_falls_back_to_numpy_and_cuda_fails_early(make_store) -> None:
    store = make_store(n=120, d=24)
    host = fit_store(store.url, FitConfig())
    auto = fit_store(store.url, FitConfig(device="auto"))
    for a, b in zip(host.layers, auto.layers, strict=True):
        np.testing.assert_array_equal(a.U_pos, b.U_pos)  # the very same numpy computation
    with pytest.raises(ConfigError, match="visible CUDA device cuda"):
        fit_store(store.url, FitConfig(device="cuda"))


@needs_cuda
def test_cuda_moments_and_svds_equal_numpy(make_store) -> None:
    cuda = resolve_device("cuda")
    assert cuda is not None and cuda.type == "cuda"
    parts = [blocks(seed, 100, 64) for seed in range(2)]
    device = DeviceMoments(64, cuda)
    for part in parts:
        device.add_rows(*part)
    assert_moments_close(device.to_moments(), host_moments(parts), rtol=1e-12)
    omega = power_law(200, rank=30)
    for path in (exact_svd, randomized_svd):
        host, found = path(omega, 0.99), path(omega, 0.99, device=cuda)
        assert found.k == host.k
        np.testing.assert_allclose(found.U, host.U, atol=1e-7)
    store = make_store(n=200, d=40)
    a, b = fit_store(store.url, FitConfig()), fit_store(store.url, FitConfig(device="cuda"))
    for x, y in zip(a.layers, b.layers, strict=True):
        assert (x.k_pos, x.k_neg) == (y.k_pos, y.k_neg)
        np.testing.assert_allclose(y.U_pos, x.U_pos, atol=1e-8)
