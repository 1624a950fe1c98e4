"""Compare two artifact versions: settings, per-layer k, captured energy, subspace similarity.

Subspace similarity of two orthonormal bases A (d, k_a) and B (d, k_b): the singular values of
A^T B are the cosines of the principal angles between the subspaces. We report

    similarity = ||A^T B||_F^2 / max(k_a, k_b)     in [0, 1]; 1 iff the subspaces are equal

and the largest principal angle in degrees over the min(k_a, k_b) angles (0 when one subspace
contains the other). Computed in float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sea_dist.registry.loader import Artifact

COMPARED_FIELDS = (
    "model_id",
    "model_revision",
    "architecture",
    "d_model",
    "n_model_layers",
    "site",
    "site_template",
    "combine",
    "centred",
    "feature_map",
    "positive_energy",
    "negative_energy",
    "fixed_k",
    "demonstrations_fingerprint",
    "store_fingerprint",
    "code_version",
)


def subspace_similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Similarity and largest principal angle (degrees) of the column spaces of a and b.

    Args:
        a: (d, k_a) orthonormal columns.
        b: (d, k_b) orthonormal columns, same d.

    Returns:
        ``(||a^T b||_F^2 / max(k_a, k_b), max principal angle in degrees)``.
    """
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if a64.shape[1] == 0 or b64.shape[1] == 0:
        return 0.0, 90.0
    cosines = np.clip(np.linalg.svd(a64.T @ b64, compute_uv=False), 0.0, 1.0)
    similarity = float(np.sum(cosines**2) / max(a64.shape[1], b64.shape[1]))
    angle = math.degrees(math.acos(float(cosines.min())))
    return min(similarity, 1.0), angle


def _pair(a: Any, b: Any) -> dict[str, Any]:
    return {"a": a, "b": b}


def diff_artifacts(a: Artifact, b: Artifact) -> dict[str, Any]:
    """A JSON-able comparison of two loaded artifacts.

    Returns:
        ``{"a", "b", "identical", "fields": {field: {"a", "b"}} for differing settings,
        "layers": [{"layer", "in_a", "in_b", "k_pos", "k_neg", "energy_pos", "energy_neg",
        "similarity_pos", "similarity_neg", "max_angle_pos_deg", "max_angle_neg_deg"}]}``,
        where per-layer values are ``{"a", "b"}`` pairs and similarities are None when the
        layer is missing on one side or the hidden sizes differ.
    """
    ma, mb = a.manifest, b.manifest
    da, db = ma.to_dict(), mb.to_dict()
    fields = {
        key: _pair(da.get(key), db.get(key))
        for key in COMPARED_FIELDS
        if da.get(key) != db.get(key) and key in da
    }
    fields.update({key: _pair(da[key], db[key]) for key in ("sha256",) if da[key] != db[key]})
    layers = []
    for layer in sorted(set(ma.layers) | set(mb.layers)):
        in_a, in_b = layer in ma.layers, layer in mb.layers
        sa = ma.layer(layer) if in_a else None
        sb = mb.layer(layer) if in_b else None
        entry: dict[str, Any] = {"layer": layer, "in_a": in_a, "in_b": in_b}
        for key in ("k_pos", "k_neg", "energy_pos", "energy_neg"):
            entry[key] = _pair(getattr(sa, key) if sa else None, getattr(sb, key) if sb else None)
        for side in ("pos", "neg"):
            similarity: float | None = None
            angle: float | None = None
            if in_a and in_b and ma.d_model == mb.d_model:
                ua = getattr(a.layers[layer], f"U_{side}")
                ub = getattr(b.layers[layer], f"U_{side}")
                similarity, angle = subspace_similarity(np.asarray(ua), np.asarray(ub))
            entry[f"similarity_{side}"] = similarity
            entry[f"max_angle_{side}_deg"] = angle
        layers.append(entry)
    return {
        "a": ma.ref,
        "b": mb.ref,
        "identical": ma.sha256 == mb.sha256,
        "fields": fields,
        "layers": layers,
    }
