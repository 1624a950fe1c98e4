"""Elementwise invertible feature maps for non-linear Phi-SEA, on numpy arrays and torch tensors.

Phi-SEA (DESIGN.md section 1) applies ``phi`` to the activations before the cross-covariances are
formed; at edit time the projections act on ``phi(h)`` and the result is mapped back with
``phi^-1``, clamped to its domain. The maps:

==========  ==============================  ==================================================
name        phi(x)                          phi^-1(y)
==========  ==============================  ==================================================
linear      x                               y
tanh        tanh(x / s)                     s * atanh(clamp(y, -1 + eps, 1 - eps))
elu         elu(x / s)                      s * y for y > 0, s * log1p(clamp(y, -1 + eps)) else
sqexp       exp(-x^2 / (2 l^2))             l * sqrt(-2 log(clamp(y, tiny, 1))) * sign(h)
==========  ==============================  ==================================================

``s`` is an input scale and ``l`` the squared-exponential length scale (both
``FitConfig.feature_map_scale``); ``eps``/``tiny`` come from the array's dtype. The
squared-exponential is even, so its inverse needs the sign of the original activation ``h``
(``reference``); ``sign(0)`` counts as ``+1``. Where ``y`` underflowed to 0 the inverse returns
the largest magnitude the dtype can express (``l * sqrt(-2 log tiny)``).

This module imports only numpy (torch lazily, when a tensor is passed) because the edit path, which
runs in serving images without dask or zarr, uses it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from sea_dist.errors import ConfigError, expected_found

if TYPE_CHECKING:
    import torch

FEATURE_MAPS = ("linear", "tanh", "elu", "sqexp")

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")


def _is_numpy(x: object) -> bool:
    return isinstance(x, np.ndarray | np.generic)


def _check(name: str, scale: float) -> None:
    if name not in FEATURE_MAPS:
        raise ConfigError(
            expected_found(
                "feature_map", "one of " + ", ".join(FEATURE_MAPS), name, "pick a supported map"
            )
        )
    if not scale > 0:
        raise ConfigError(expected_found("feature_map_scale", "a value > 0", scale))


def _as_float(x: Any) -> Any:
    """Integer inputs become float64 (numpy) / the default float dtype (torch)."""
    if _is_numpy(x):
        array = np.asarray(x)
        return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float64)
    if not x.is_floating_point():
        import torch

        return x.to(torch.get_default_dtype())
    return x


def phi(x: ArrayT, name: str = "linear", scale: float = 1.0) -> ArrayT:
    """Apply the feature map elementwise.

    Args:
        x: activations, any shape; numpy array or torch tensor (float dtypes kept, ints cast).
        name: ``linear``, ``tanh``, ``elu`` or ``sqexp``.
        scale: tanh/elu input scale, or the squared-exponential length scale (> 0).

    Returns:
        ``phi(x)``, same type, shape and (float) dtype as ``x``.
    """
    _check(name, scale)
    x = _as_float(x)
    if name == "linear":
        return x
    return cast(ArrayT, _phi_numpy(x, name, scale) if _is_numpy(x) else _phi_torch(x, name, scale))


def phi_inverse(
    y: ArrayT, name: str = "linear", scale: float = 1.0, reference: ArrayT | None = None
) -> ArrayT:
    """Map feature-space values back to activation space, clamping ``y`` to the map's range.

    Args:
        y: feature-space values, any shape; numpy array or torch tensor.
        name: the map used by :func:`phi`.
        scale: the scale used by :func:`phi`.
        reference: the original activations ``h`` (same shape as ``y``); required for ``sqexp``,
            whose inverse takes its sign from ``h``; ignored by the other maps.

    Returns:
        ``phi^-1(y)``, same type, shape and dtype as ``y``.

    Raises:
        ConfigError: unknown map, bad scale, or ``sqexp`` without ``reference``.
    """
    _check(name, scale)
    y = _as_float(y)
    if name == "linear":
        return y
    if name == "sqexp" and reference is None:
        raise ConfigError(
            expected_found(
                "phi_inverse(sqexp) reference",
                "the original activations h",
                None,
                "pass reference=h so the sign can be restored",
            )
        )
    if _is_numpy(y):
        return cast(ArrayT, _inverse_numpy(y, name, scale, reference))
    return cast(ArrayT, _inverse_torch(y, name, scale, reference))


def _phi_numpy(x: Any, name: str, scale: float) -> np.ndarray:
    u = x / np.asarray(scale, dtype=x.dtype)
    if name == "tanh":
        return np.tanh(u)
    if name == "elu":
        # expm1 only sees the non-positive part, so large inputs never overflow.
        return np.where(u > 0, u, np.expm1(np.minimum(u, 0)))
    return np.exp(-0.5 * u * u)


def _phi_torch(x: Any, name: str, scale: float) -> Any:
    import torch

    u = x / scale
    if name == "tanh":
        return torch.tanh(u)
    if name == "elu":
        return torch.where(u > 0, u, torch.expm1(torch.clamp(u, max=0)))
    return torch.exp(-0.5 * u * u)


def _inverse_numpy(y: Any, name: str, scale: float, reference: Any) -> np.ndarray:
    info = np.finfo(y.dtype)
    eps, tiny = float(info.eps), float(info.tiny)
    s = np.asarray(scale, dtype=y.dtype)
    if name == "tanh":
        return s * np.arctanh(np.clip(y, -1 + eps, 1 - eps))
    if name == "elu":
        return s * np.where(y > 0, y, np.log1p(np.clip(y, -1 + eps, 0)))
    magnitude = s * np.sqrt(-2 * np.log(np.clip(y, tiny, 1)))
    return np.where(np.asarray(reference) < 0, -magnitude, magnitude)


def _inverse_torch(y: Any, name: str, scale: float, reference: Any) -> Any:
    import torch

    info = torch.finfo(y.dtype)
    eps, tiny = float(info.eps), float(info.tiny)
    if name == "tanh":
        return scale * torch.atanh(torch.clamp(y, -1 + eps, 1 - eps))
    if name == "elu":
        return scale * torch.where(y > 0, y, torch.log1p(torch.clamp(y, -1 + eps, 0)))
    magnitude = scale * torch.sqrt(-2 * torch.log(torch.clamp(y, tiny, 1)))
    return torch.where(reference < 0, -magnitude, magnitude)


@dataclass(frozen=True)
class FeatureMap:
    """A named feature map with its parameter, as recorded in ``fit.json`` and manifests.

    Attributes:
        name: ``linear``, ``tanh``, ``elu`` or ``sqexp``.
        scale: tanh/elu input scale or squared-exponential length scale.
    """

    name: str = "linear"
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check(self.name, self.scale)

    @property
    def is_linear(self) -> bool:
        """Whether the map is the identity (plain SEA)."""
        return self.name == "linear"

    def forward(self, x: ArrayT) -> ArrayT:
        """``phi(x)``; see :func:`phi`."""
        return phi(x, self.name, self.scale)

    def inverse(self, y: ArrayT, reference: ArrayT | None = None) -> ArrayT:
        """``phi^-1(y)``; see :func:`phi_inverse`."""
        return phi_inverse(y, self.name, self.scale, reference)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"name": ..., "scale": ...}``."""
        return {"name": self.name, "scale": float(self.scale)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureMap:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: the mapping lacks ``name`` or holds invalid values.
        """
        if not isinstance(data, dict) or "name" not in data:
            raise ConfigError(expected_found("feature_map", "a mapping with 'name'", data))
        return cls(name=str(data["name"]), scale=float(data.get("scale", 1.0)))
