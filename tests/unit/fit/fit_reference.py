"""Helpers of the fit tests: synthetic activation stores with planted low-rank structure and a plain
numpy reference of DESIGN.md section 1 (dense Omega, full SVD, the k rule), written independently
of ``sea_dist.fit``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sea_dist.store import ActivationStore, StoreSpec

ROLES = ("neutral", "positive", "negative")


def planted_activations(
    rng: np.random.Generator,
    n: int,
    n_layers: int,
    d: int,
    rank: int = 5,
    noise: float = 0.05,
    mean_scale: float = 1.0,
) -> dict[str, np.ndarray]:
    """(n, n_layers, d) float32 arrays: a shared mean + rank-``rank`` latent structure + noise.

    The three roles share latent factors z (so the cross-covariances have rank ``rank`` plus a
    noise floor) with geometrically decaying strengths and different couplings, so Omega+ and
    Omega- have different spectra and k.
    """
    out = {role: np.empty((n, n_layers, d), dtype=np.float32) for role in ROLES}
    strengths = np.geomspace(3.0, 0.5, rank)
    couplings = {
        "neutral": np.ones(rank),
        "positive": np.linspace(1.0, 0.4, rank),
        "negative": np.linspace(0.3, 1.2, rank),
    }
    for layer in range(n_layers):
        z = rng.standard_normal((n, rank)) * strengths
        mean = mean_scale * rng.standard_normal(d)
        for role in ROLES:
            basis = np.linalg.qr(rng.standard_normal((d, rank)))[0]
            shift = mean + 0.3 * rng.standard_normal(d) if role != "neutral" else mean
            values = shift + (z * couplings[role]) @ basis.T + noise * rng.standard_normal((n, d))
            out[role][:, layer] = values
    return out


def write_store(
    url: str,
    data: dict[str, np.ndarray],
    layers: tuple[int, ...],
    rows_per_shard: int,
    complete: bool = True,
) -> ActivationStore:
    """Write ``data`` into a new store at ``url`` (every shard unless ``complete`` is false)."""
    n, _, d = data["neutral"].shape
    spec = StoreSpec(
        model_id="test-model",
        model_revision="0",
        architecture="llama",
        d_model=d,
        n_model_layers=max(layers) + 1,
        tokenizer_fingerprint="tok",
        site="residual",
        site_template=None,
        layers=layers,
        token="last",
        neutral="prompt",
        max_new_tokens=0,
        demonstrations_fingerprint="demos",
        n_rows=n,
        rows_per_shard=rows_per_shard,
    )
    store = ActivationStore.create(url, spec)
    for shard, start, stop in store.iter_shards():
        if not complete and shard == store.spec.n_shards - 1:
            break
        store.write_shard(
            shard,
            {role: data[role][start:stop] for role in ROLES},
            [f"row-{i}" for i in range(start, stop)],
            [""] * (stop - start),
            np.ones(stop - start, dtype=np.int64),
        )
    return store


def reference_phi(x: np.ndarray, name: str, scale: float) -> np.ndarray:
    """The feature maps of DESIGN.md, written out directly."""
    if name == "linear":
        return x
    if name == "tanh":
        return np.tanh(x / scale)
    if name == "elu":
        u = x / scale
        return np.where(u > 0, u, np.exp(np.minimum(u, 0)) - 1)
    if name == "sqexp":
        return np.exp(-(x**2) / (2 * scale**2))
    raise ValueError(name)


@dataclass
class ReferenceLayer:
    U_pos: np.ndarray
    U_neg: np.ndarray
    S_pos: np.ndarray
    S_neg: np.ndarray
    k_pos: int
    k_neg: int
    energy_pos: float
    energy_neg: float
    mean: np.ndarray
    signature: float


def reference_k(s: np.ndarray, ratio: float) -> tuple[int, np.ndarray]:
    """Smallest k with cumulative energy >= ratio; refuses data too close to the threshold."""
    cumulative = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.argmax(cumulative >= ratio)) + 1
    assert np.min(np.abs(cumulative - ratio)) > 1e-9, "test data sits on the k threshold"
    return k, cumulative


def reference_fit(
    data: dict[str, np.ndarray],
    layer_index: int,
    centre: bool = True,
    k_pos: float = 0.9,
    k_neg: float = 0.9,
    fixed_k: int | None = None,
    feature_map: str = "linear",
    scale: float = 1.0,
) -> ReferenceLayer:
    """Plain numpy SEA fit of one layer: dense Omega, full SVD, the k rule."""
    x, x_pos, x_neg = (
        reference_phi(data[role][:, layer_index].astype(np.float64), feature_map, scale)
        for role in ROLES
    )
    n = x.shape[0]
    mean = x.mean(axis=0)
    stacked = np.concatenate([x_pos, x_neg])
    labels = np.concatenate([np.ones(n), -np.ones(n)])[:, None]
    cross = (stacked - stacked.mean(axis=0)).T @ (labels - labels.mean()) / (2 * n)
    signature = float(np.linalg.svd(cross, compute_uv=False).sum())
    if centre:
        x, x_pos, x_neg = x - mean, x_pos - x_pos.mean(axis=0), x_neg - x_neg.mean(axis=0)
    found = {}
    for sign, other, ratio in (("pos", x_pos, k_pos), ("neg", x_neg, k_neg)):
        u, s, _ = np.linalg.svd(x.T @ other / n)
        if fixed_k is None:
            k, cumulative = reference_k(s, ratio)
        else:
            k, cumulative = fixed_k, np.cumsum(s**2) / np.sum(s**2)
        found[sign] = (u[:, :k], s, k, float(cumulative[k - 1]))
    return ReferenceLayer(
        U_pos=found["pos"][0],
        U_neg=found["neg"][0],
        S_pos=found["pos"][1],
        S_neg=found["neg"][1],
        k_pos=found["pos"][2],
        k_neg=found["neg"][2],
        energy_pos=found["pos"][3],
        energy_neg=found["neg"][3],
        mean=mean,
        signature=signature,
    )


def projection_gap(u: np.ndarray, v: np.ndarray) -> float:
    """``||U U^T - V V^T||_F`` (sign- and rotation-invariant)."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    return float(np.linalg.norm(u @ u.T - v @ v.T))


def relative_projection_gap(u: np.ndarray, v: np.ndarray) -> float:
    """``||U U^T - V V^T||_F / ||V V^T||_F``."""
    v = np.asarray(v, dtype=np.float64)
    return projection_gap(u, v) / float(np.linalg.norm(v @ v.T))
