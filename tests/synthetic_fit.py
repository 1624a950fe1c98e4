"""Synthetic fit outputs (docs/formats.md section 2) for tests and benchmarks (test code: it
lives in tests/, not in the library).

Builds a valid ``fit.json`` + ``projections.safetensors`` with random orthonormal U+ and U- (numpy
QR), decreasing singular values and the store attributes of an imaginary tiny model, without a
model, Ray or Dask. Nothing here is used by the publish path itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sea_dist.format.files import FIT_FILE, PROJECTIONS_FILE
from sea_dist.format.tensors import encode
from sea_dist.registry.manifest import fingerprint


def _orthonormal(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return q.astype(np.float32)


def write_synthetic_fit(
    folder: str | Path,
    *,
    d_model: int = 16,
    n_model_layers: int = 4,
    layers: Sequence[int] = (1, 3),
    k_pos: int | Sequence[int] = 3,
    k_neg: int | Sequence[int] = 2,
    seed: int = 0,
    model_id: str = "tiny-random-llama",
    demonstrations: str = "demo",
    centred: bool = True,
    store_attrs: Mapping[str, Any] | None = None,
    fit_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write a synthetic fit-output folder and return it.

    Args:
        folder: output folder (created).
        d_model: hidden size d.
        n_model_layers: decoder layers of the imaginary model.
        layers: fitted layer indices.
        k_pos: kept rank of U+ (one value, or one per layer).
        k_neg: kept rank of U- (one value, or one per layer).
        seed: random seed for the bases.
        model_id: recorded model id.
        demonstrations: text whose sha256 becomes the demonstrations fingerprint.
        centred: write ``mean`` tensors.
        store_attrs: overrides of the store attributes.
        fit_config: overrides of the fit config.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ks_pos = [k_pos] * len(layers) if isinstance(k_pos, int) else list(k_pos)
    ks_neg = [k_neg] * len(layers) if isinstance(k_neg, int) else list(k_neg)
    m = min(d_model, 8 + max(ks_pos + ks_neg))
    tensors: dict[str, np.ndarray] = {}
    entries = []
    for layer, kp, kn in zip(layers, ks_pos, ks_neg):
        s_pos = np.sort(rng.uniform(0.1, 10.0, m))[::-1].astype(np.float64)
        s_neg = np.sort(rng.uniform(0.1, 10.0, m))[::-1].astype(np.float64)
        tensors[f"layers.{layer}.U_pos"] = _orthonormal(rng, d_model, kp)
        tensors[f"layers.{layer}.U_neg"] = _orthonormal(rng, d_model, kn)
        tensors[f"layers.{layer}.S_pos"] = s_pos
        tensors[f"layers.{layer}.S_neg"] = s_neg
        if centred:
            tensors[f"layers.{layer}.mean"] = rng.standard_normal(d_model).astype(np.float32)
        entries.append(
            {
                "layer": layer,
                "k_pos": kp,
                "k_neg": kn,
                "energy_pos": float(np.sum(s_pos[:kp] ** 2) / np.sum(s_pos**2)),
                "energy_neg": float(np.sum(s_neg[:kn] ** 2) / np.sum(s_neg**2)),
                "total_energy_pos": float(np.sum(s_pos**2)),
                "total_energy_neg": float(np.sum(s_neg**2)),
                "signature": float(rng.uniform(0, 5)),
            }
        )
    attrs: dict[str, Any] = {
        "schema_version": 1,
        "model_id": model_id,
        "model_revision": "main",
        "architecture": "llama",
        "d_model": d_model,
        "n_model_layers": n_model_layers,
        "tokenizer_fingerprint": fingerprint({"vocab": model_id}),
        "site": "residual",
        "site_template": None,
        "layers": list(layers),
        "token": "last",
        "neutral": "prompt",
        "max_new_tokens": 16,
        "demonstrations_fingerprint": fingerprint(demonstrations),
        "n_rows": 32,
        "rows_per_shard": 16,
        "n_shards": 2,
        "dtype": "float32",
        "codec": "zstd",
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    attrs.update(store_attrs or {})
    config: dict[str, Any] = {
        "out": str(out),
        "centre": centred,
        "positive_energy": 0.99,
        "negative_energy": 0.99,
        "fixed_k": None,
        "svd": "exact",
        "feature_map": "linear",
        "feature_map_scale": 1.0,
        "combine": "l2",
        "scheduler": "synchronous",
        "chunk_rows": 4096,
        "oversample": 10,
        "power_iterations": 2,
        "seed": seed,
    }
    config.update(fit_config or {})
    fit = {
        "schema_version": 1,
        "store": {"url": "sea-runs/store.zarr", "attrs": attrs},
        "config": config,
        "svd_path": {str(layer): "exact" for layer in layers},
        "feature_map": {"name": config["feature_map"], "scale": config["feature_map_scale"]},
        "combine": config["combine"],
        "centred": centred,
        "layers": entries,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    (out / PROJECTIONS_FILE).write_bytes(encode(tensors))
    (out / FIT_FILE).write_text(json.dumps(fit, indent=2), encoding="utf-8")
    return out
