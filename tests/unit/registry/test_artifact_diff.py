"""Diff: subspace similarity against a principal-angle reference, per-layer k/energy pairs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sea_dist.registry.diff import subspace_similarity
from sea_dist.registry.filesystem import Registry

FitFactory = Callable[..., Path]


def _basis(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((d, k)))[0]


def _reference(a: np.ndarray, b: np.ndarray) -> float:
    # Projection-matrix form: tr(P_a P_b) = ||a^T b||_F^2, normalised by the larger rank.
    pa, pb = a @ a.T, b @ b.T
    return float(np.trace(pa @ pb) / max(a.shape[1], b.shape[1]))


def test_similarity_matches_reference_and_limits() -> None:
    rng = np.random.default_rng(0)
    a, b = _basis(rng, 12, 3), _basis(rng, 12, 5)
    similarity, angle = subspace_similarity(a, b)
    assert similarity == pytest.approx(_reference(a, b), abs=1e-12)
    assert 0.0 <= similarity <= 1.0 and 0.0 <= angle <= 90.0
    # Same subspace, different basis: similarity 1, no angle.
    rotation = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    same, same_angle = subspace_similarity(a, a @ rotation)
    assert same == pytest.approx(1.0) and same_angle == pytest.approx(0.0, abs=1e-5)
    # Orthogonal subspaces: 0 and 90 degrees.
    eye = np.eye(6)
    assert subspace_similarity(eye[:, :2], eye[:, 2:4]) == pytest.approx((0.0, 90.0))
    # Nested: the smaller is inside the larger, so no angle, similarity k_small / k_large.
    nested, nested_angle = subspace_similarity(eye[:, :2], eye[:, :4])
    assert nested == pytest.approx(0.5) and nested_angle == pytest.approx(0.0)


def test_diff_of_two_versions(registry: Registry, make_fit: FitFactory) -> None:
    registry.publish(make_fit(seed=1, layers=(1, 2), k_pos=3), "x")
    registry.publish(make_fit(seed=2, layers=(2, 3), k_pos=4, model_id="other"), "x")
    result = registry.diff("x@1", "x@2")
    assert result["a"] == "x@1" and result["b"] == "x@2" and not result["identical"]
    assert result["fields"]["model_id"] == {"a": "tiny-random-llama", "b": "other"}
    by_layer = {e["layer"]: e for e in result["layers"]}
    assert sorted(by_layer) == [1, 2, 3]
    assert by_layer[1]["in_b"] is False and by_layer[1]["similarity_pos"] is None
    assert by_layer[2]["k_pos"] == {"a": 3, "b": 4}
    a, b = registry.load("x@1"), registry.load("x@2")
    expected = _reference(
        a.layers[2].U_neg.astype(np.float64), b.layers[2].U_neg.astype(np.float64)
    )
    assert by_layer[2]["similarity_neg"] == pytest.approx(expected, abs=1e-6)
    self_diff = registry.diff("x@1", "x@latest")
    assert not self_diff["identical"]
    same = registry.diff("x@2", "x@latest")
    assert same["identical"] and same["fields"] == {}
    assert all(e["similarity_pos"] == pytest.approx(1.0) for e in same["layers"])
