"""Phi-SEA feature maps (sea_dist/feature_maps.py): values, inverses, clamping, numpy vs torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fit_reference import reference_phi

from sea_dist.errors import ConfigError
from sea_dist.feature_maps import FEATURE_MAPS, FeatureMap, phi, phi_inverse

SCALES = (0.5, 1.0, 3.0)


@pytest.mark.parametrize("name", FEATURE_MAPS)
@pytest.mark.parametrize("scale", SCALES)
def test_phi_matches_the_formulas(name: str, scale: float) -> None:
    x = np.random.default_rng(0).normal(scale=2.0, size=(7, 5))
    np.testing.assert_allclose(phi(x, name, scale), reference_phi(x, name, scale), rtol=1e-12)


@pytest.mark.parametrize("name", FEATURE_MAPS)
@pytest.mark.parametrize("scale", SCALES)
def test_inverse_round_trips_numpy(name: str, scale: float) -> None:
    # Inside the well-conditioned part of each map's domain the inverse is exact.
    x = np.random.default_rng(1).uniform(-1.5, 1.5, size=(50,)) * scale
    y = phi(x, name, scale)
    back = phi_inverse(y, name, scale, reference=x)
    np.testing.assert_allclose(back, x, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("name", FEATURE_MAPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_matches_numpy(name: str, dtype: torch.dtype) -> None:
    x = np.random.default_rng(2).uniform(-2, 2, size=(4, 6))
    xt = torch.tensor(x, dtype=dtype)
    yt = phi(xt, name, 1.5)
    assert isinstance(yt, torch.Tensor) and yt.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(yt.numpy(), phi(x, name, 1.5), rtol=tol, atol=tol)
    back = phi_inverse(yt, name, 1.5, reference=xt)
    assert isinstance(back, torch.Tensor) and back.dtype == dtype
    np.testing.assert_allclose(
        back.numpy(), phi_inverse(phi(x, name, 1.5), name, 1.5, reference=x), rtol=1e-3, atol=1e-3
    )


@pytest.mark.parametrize("name", ["tanh", "elu", "sqexp"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_inverse_clamps_out_of_range_values_to_finite(name: str, backend: str) -> None:
    y = np.array([-5.0, -1.0, -0.999999, 0.0, 1.0, 1.5, 7.0], dtype=np.float32)
    h = np.array([-1.0, 1.0, -2.0, 3.0, -0.5, 2.0, 1.0], dtype=np.float32)
    if backend == "torch":
        out = phi_inverse(torch.tensor(y), name, 2.0, reference=torch.tensor(h)).numpy()
    else:
        out = phi_inverse(y, name, 2.0, reference=h)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))


def test_sqexp_restores_the_sign_from_the_reference() -> None:
    h = np.array([-2.0, -0.3, 0.0, 0.4, 1.7])
    back = phi_inverse(phi(h, "sqexp", 1.2), "sqexp", 1.2, reference=h)
    np.testing.assert_allclose(back, h, atol=1e-7)
    assert back[2] == 0.0
    # sign(0) counts as +1: a zero reference never flips the magnitude.
    assert phi_inverse(np.array([0.5]), "sqexp", 1.0, reference=np.array([0.0]))[0] > 0


def test_sqexp_inverse_requires_a_reference() -> None:
    with pytest.raises(ConfigError, match="reference"):
        phi_inverse(np.ones(3), "sqexp", 1.0)


def test_elu_large_inputs_do_not_overflow() -> None:
    with np.errstate(over="raise"):
        assert phi(np.array([1000.0]), "elu", 1.0)[0] == 1000.0


def test_integer_input_is_cast_to_float() -> None:
    out = phi(np.array([0, 1, 2]), "tanh", 1.0)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, np.tanh([0.0, 1.0, 2.0]))


def test_linear_is_the_identity() -> None:
    x = np.random.default_rng(3).normal(size=(3, 3)).astype(np.float32)
    assert phi(x) is x and phi_inverse(x) is x


def test_feature_map_records_its_parameters() -> None:
    fmap = FeatureMap("sqexp", 2.5)
    assert fmap.to_dict() == {"name": "sqexp", "scale": 2.5}
    assert FeatureMap.from_dict(fmap.to_dict()) == fmap
    assert not fmap.is_linear and FeatureMap().is_linear
    x = np.array([-1.0, 2.0])
    np.testing.assert_allclose(fmap.inverse(fmap.forward(x), reference=x), x)


@pytest.mark.parametrize(
    ("name", "scale", "match"),
    [("relu", 1.0, "feature_map"), ("tanh", 0.0, "feature_map_scale"), ("elu", -1, "scale")],
)
def test_bad_maps_are_refused(name: str, scale: float, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FeatureMap(name, scale)
    with pytest.raises(ConfigError, match=match):
        phi(np.ones(2), name, scale)


def test_from_dict_refuses_garbage() -> None:
    with pytest.raises(ConfigError, match="feature_map"):
        FeatureMap.from_dict({"scale": 1.0})
