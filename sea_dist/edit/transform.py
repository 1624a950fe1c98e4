"""The SEA edit of one layer's activations, as a pure tensor function (DESIGN.md section 1).

For an activation ``h`` (one token, ``d`` features), with ``m`` the stored mean (0 if uncentred)
and ``phi`` the feature map (identity for linear SEA)::

    x  = phi(h) - m
    p  = U+ (U+^T x)                       keep positive-covarying directions
    n  = x - U- (U-^T x)                   remove negative-covarying directions
    l2:      s = x + alpha (p + n - x);      y = s * ||x|| / max(||s||, eps)   norms per token
    average: y = x + alpha ((p + n) / 2 - x)
    h' = phi^-1(y + m)                     clamped to phi's range; sqexp takes its sign from h

``alpha`` in [0, 1] is the edit strength: 1 is the full SEA edit of DESIGN.md section 1 (computed
by exactly the same operations as before ``alpha`` existed, so its output is unchanged bit for
bit), 0 leaves ``h`` as it is without any arithmetic (``(h - m) + m`` would not be bit-exact):
a copy from :meth:`LayerOperator.__call__`, the site's own output object in the hooks.

``p + n - x = [U+, -U-] ([U+, U-]^T x)``, so the edit is two thin matrix products of cost
``O(d (k+ + k-))`` per token, fused with the ``alpha`` blend into one ``addmm``; no ``d x d``
matrix is ever formed. Everything runs in float32 and is cast back to the input dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sea_dist import feature_maps
from sea_dist.edit.projections import LayerProjection, SeaEdit
from sea_dist.errors import ConfigError, expected_found

EPS = 1e-12
"""Floor on ``||s||`` in the l2 combine (a zero edit stays zero instead of dividing by 0)."""

PhiPair = tuple[
    Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
]
"""``(phi(h), phi_inverse(y, h))`` on float32 torch tensors; ``h`` gives sqexp its sign."""


def feature_map_pair(name: str, scale: float) -> PhiPair | None:
    """The torch feature map and its clamped inverse for Phi-SEA, or None for ``linear``.

    The functions come from :mod:`sea_dist.feature_maps`, the module the fit uses, so the edit
    applies exactly the map the projections were fitted with.
    """
    if name == "linear":
        return None

    def phi(h: torch.Tensor) -> torch.Tensor:
        return feature_maps.phi(h, name, scale)

    def phi_inverse(y: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return feature_maps.phi_inverse(y, name, scale, reference=h)

    return phi, phi_inverse


def check_alpha(alpha: float, what: str = "alpha") -> float:
    """``alpha`` as a float, or ConfigError when it is not a finite number in [0, 1]."""
    if (
        not isinstance(alpha, int | float)
        or isinstance(alpha, bool)
        or not math.isfinite(alpha)
        or not 0.0 <= alpha <= 1.0
    ):
        raise ConfigError(
            expected_found(what, "a number in [0, 1] (1 = full edit, 0 = none)", alpha)
        )
    return float(alpha)


@dataclass(frozen=True)
class LayerOperator:
    """One layer's edit, with its factors prepared on one device (float32).

    Attributes:
        basis: ``(d, k+ + k-)`` = ``[U+, U-]``: coordinates of ``x`` on both subspaces.
        signed: ``(k+ + k-, d)`` = ``[U+, -U-]^T``: adds ``p`` and subtracts the ``U-`` part.
        mean: ``(d,)`` or None.
        combine: ``l2`` or ``average``.
        phi: feature map pair, or None for linear SEA.
        alpha: edit strength in [0, 1] (see the module doc).
    """

    basis: torch.Tensor
    signed: torch.Tensor
    mean: torch.Tensor | None
    combine: str
    phi: PhiPair | None = None
    alpha: float = 1.0

    def __post_init__(self) -> None:
        check_alpha(self.alpha)

    @classmethod
    def build(
        cls,
        proj: LayerProjection,
        combine: str,
        phi: PhiPair | None = None,
        device: torch.device | str = "cpu",
        alpha: float = 1.0,
    ) -> LayerOperator:
        """Prepare ``proj`` for :meth:`__call__` on ``device``."""
        u_pos = proj.u_pos.to(device=device, dtype=torch.float32)
        u_neg = proj.u_neg.to(device=device, dtype=torch.float32)
        mean = None if proj.mean is None else proj.mean.to(device=device, dtype=torch.float32)
        return cls(
            basis=torch.cat([u_pos, u_neg], dim=1).contiguous(),
            signed=torch.cat([u_pos, -u_neg], dim=1).T.contiguous(),
            mean=mean,
            combine=combine,
            phi=phi,
            alpha=check_alpha(alpha),
        )

    @property
    def device(self) -> torch.device:
        """Where the factors live."""
        return self.basis.device

    @property
    def is_identity(self) -> bool:
        """True when ``alpha == 0``: :meth:`__call__` returns its input unchanged."""
        return self.alpha == 0.0

    def to(self, device: torch.device) -> LayerOperator:
        """A copy with the factors on ``device``."""
        return LayerOperator(
            basis=self.basis.to(device),
            signed=self.signed.to(device),
            mean=None if self.mean is None else self.mean.to(device),
            combine=self.combine,
            phi=self.phi,
            alpha=self.alpha,
        )

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """Edit activations.

        Args:
            h: ``(..., d)`` any float dtype; each row along the last axis is one token.

        Returns:
            Edited activations, same shape and dtype as ``h`` (a copy of ``h`` when
            ``alpha == 0``).
        """
        if self.alpha == 0.0:
            return h.clone()
        shape = h.shape
        h32 = h.reshape(-1, shape[-1]).to(torch.float32)
        x = h32 if self.phi is None else self.phi[0](h32)
        # Few, fused kernels: in KV-cache decoding each call sees only batch-many tokens, so the
        # per-op dispatch cost, not the O(d k) arithmetic, is what the hook adds to a step.
        if self.mean is not None:
            x = x - self.mean
        coords = x @ self.basis
        alpha = self.alpha
        if self.combine == "l2":
            # s = x + alpha (p + n - x), p + n - x = [U+, -U-] [U+, U-]^T x; alpha = 1 keeps the
            # call without the scalar so the full edit is the same kernel as before alpha existed
            s = (
                torch.addmm(x, coords, self.signed)
                if alpha == 1.0
                else torch.addmm(x, coords, self.signed, alpha=alpha)
            )
            # norms per token (one per row), never over the token axis; + mean fused (addcmul)
            scale = x.norm(dim=-1, keepdim=True) / s.norm(dim=-1, keepdim=True).clamp_min(EPS)
            s = s * scale if self.mean is None else torch.addcmul(self.mean, s, scale)
        elif alpha == 1.0:
            s = torch.addmm(x, coords, self.signed)  # p + n
            s = s * 0.5 if self.mean is None else torch.add(self.mean, s, alpha=0.5)
        else:
            # x + alpha ((x + D) / 2 - x) = (1 - alpha/2) x + (alpha/2) D, D = p + n - x
            s = torch.addmm(x, coords, self.signed, beta=1.0 - alpha / 2, alpha=alpha / 2)
            if self.mean is not None:
                s = s + self.mean
        if self.phi is not None:
            s = self.phi[1](s, h32)
        return s.to(h.dtype).reshape(shape)


def layer_operators(
    edit: SeaEdit,
    layers: tuple[int, ...],
    devices: dict[int, torch.device],
    alpha: float = 1.0,
) -> dict[int, LayerOperator]:
    """Build the operators of ``layers`` (each on its ``devices[layer]``) at strength ``alpha``."""
    phi = feature_map_pair(edit.feature_map, edit.feature_map_scale)
    return {
        layer: LayerOperator.build(edit.layers[layer], edit.combine, phi, devices[layer], alpha)
        for layer in layers
    }


def edit_activations(
    h: torch.Tensor,
    proj: LayerProjection,
    combine: str = "l2",
    feature_map: str = "linear",
    scale: float = 1.0,
    alpha: float = 1.0,
) -> torch.Tensor:
    """Apply one layer's edit to ``h`` (``(..., d)``), without any model. See the module doc."""
    phi = feature_map_pair(feature_map, scale)
    return LayerOperator.build(proj, combine, phi, h.device, alpha)(h)
