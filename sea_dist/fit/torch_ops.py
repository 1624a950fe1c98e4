"""The fit on a torch device: which device, the statistics pass, the SVD operations.

``fit.device`` (:class:`sea_dist.config.FitConfig`) names where the statistics pass and the SVDs
run. :func:`resolve_device` turns it into a ``torch.device``, or None for the numpy path:

- ``cpu``: the numpy path (None);
- ``auto``: ``cuda`` when ``torch.cuda.is_available()``, else the numpy path;
- ``cuda`` / ``cuda:N``: that CUDA device, which must be visible, else a one-line ConfigError;
- ``torch-cpu`` (:data:`TORCH_CPU`): torch on the CPU device. Not a user setting (the config
  validation refuses it); tests and benchmarks pass it to ``fit_store(device=...)`` to run the
  device code without a GPU.

On a device everything is float64, as on the host, except the statistics pass with
``precision="mixed"``: float32 products of each block, summed into float64 accumulators (the
block sums of rows stay float64). The results come back as numpy (:class:`LayerMoments`, and
through :class:`TorchOps` the SVD paths of :mod:`sea_dist.fit.svd`), so the rest of the fit, the
k rule and the artifact do not depend on the device.

The pass on a device is one loop per layer over the same blocks as the Dask pass
(:func:`sea_dist.fit.streaming.block_ranges`), each block checked as it is read, with the next
block read by a helper thread while the device works on the current one. It does not use Dask:
one process owns the device, and splitting the rows would only add transfers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import torch

from sea_dist.errors import ConfigError, FitError, expected_found
from sea_dist.feature_maps import phi
from sea_dist.fit.covariance import LayerMoments
from sea_dist.store import StoreSpec
from sea_dist.store.integrity import LayerCheck, read_checked

log = logging.getLogger(__name__)

TORCH_CPU = "torch-cpu"
"""Internal device name: the torch code on the CPU device (tests, benchmarks), never a config."""
Precision = Literal["float64", "mixed"]
ROLES = ("neutral", "positive", "negative")


def resolve_device(name: str) -> torch.device | None:
    """Resolve a ``fit.device`` value.

    Args:
        name: ``cpu``, ``auto``, ``cuda``, ``cuda:N`` or :data:`TORCH_CPU`.

    Returns:
        The torch device to run on, or None for the numpy path.

    Raises:
        ConfigError: an unknown name, or a CUDA device that is not visible (what is visible is
            named).
    """
    if name == "cpu":
        return None
    if name == TORCH_CPU:
        return torch.device("cpu")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("fit.device auto: no CUDA device visible; the fit runs with numpy on the CPU")
        return None
    if name != "cuda" and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(expected_found("fit.device", "cpu, auto, cuda or cuda:N", name))
    index = int(name[5:]) if name != "cuda" else 0
    if not torch.cuda.is_available():
        found = f"no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False)"
    elif index >= (count := torch.cuda.device_count()):
        found = f"{count} CUDA device(s), cuda:0..cuda:{count - 1}"
    else:
        return torch.device(name)
    raise ConfigError(
        f"fit.device: expected a visible CUDA device {name}, found {found}; set fit.device to "
        "cpu or auto, or run where the GPU is visible (CUDA_VISIBLE_DEVICES, a CUDA build of torch)"
    )


class DeviceMoments:
    """:class:`LayerMoments` (products route) accumulated on a torch device.

    Args:
        d: feature width.
        device: where the accumulators live.
        precision: ``float64`` products, or ``mixed``: float32 products of each block (rows
            shifted by the first block's means, undone in float64) added into the float64
            accumulators.
    """

    def __init__(self, d: int, device: torch.device, precision: Precision = "float64") -> None:
        if precision not in ("float64", "mixed"):
            raise FitError(expected_found("precision", "float64 or mixed", precision))
        self.device, self.precision, self.n_rows = device, precision, 0
        self.shifts: torch.Tensor | None = None  # (3, d) float32 values held as float64
        self.sums = torch.zeros((3, d), dtype=torch.float64, device=device)
        self.cross_pos = torch.zeros((d, d), dtype=torch.float64, device=device)
        self.cross_neg = torch.zeros((d, d), dtype=torch.float64, device=device)

    def put(self, rows: np.ndarray, map_name: str = "linear", scale: float = 1.0) -> torch.Tensor:
        """Copy an (n, d) block of any float dtype to the device as float64, mapped by phi.

        The copy keeps the block's dtype (float32 stores move half the bytes of float64) and the
        cast and feature map run on the device.
        """
        tensor = torch.from_numpy(np.ascontiguousarray(rows)).to(self.device, non_blocking=True)
        return phi(tensor.to(torch.float64), map_name, scale)

    def add_rows(
        self,
        neutral: np.ndarray | torch.Tensor,
        positive: np.ndarray | torch.Tensor,
        negative: np.ndarray | torch.Tensor,
    ) -> None:
        """Accumulate a block of rows, like :meth:`LayerMoments.add_rows`.

        Args:
            neutral, positive, negative: (n, d) numpy arrays (feature map already applied) or
                float64 tensors on the device (from :meth:`put`).
        """
        blocks = [
            b if isinstance(b, torch.Tensor) else self.put(b) for b in (neutral, positive, negative)
        ]
        self.n_rows += int(blocks[0].shape[0])
        for index, block in enumerate(blocks):
            self.sums[index] += block.sum(dim=0)
        if self.precision == "mixed":
            # As on the host (covariance.block_shifts): a shared mean much larger than the
            # spread would cost float32 products the digits centring needs, so the rows are
            # shifted by the first block's float32-rounded means and the shift is undone in
            # float64 by to_moments.
            if self.shifts is None:
                means = torch.stack([block.mean(dim=0) for block in blocks])
                self.shifts = means.to(torch.float32).to(torch.float64)
            shifts = self.shifts.to(torch.float32)
            blocks = [block.to(torch.float32) - shifts[i] for i, block in enumerate(blocks)]
        left = blocks[0].T
        self.cross_pos += left @ blocks[1]  # float32 products are upcast by the in-place add
        self.cross_neg += left @ blocks[2]

    def to_moments(self) -> LayerMoments:
        """The sums as numpy :class:`LayerMoments` (float64, uncentred ``X^T X+``)."""
        if self.shifts is not None:
            # Products of shifted rows A = X - 1c^T: X^T X+ = A^T B + c (s+ - n c+)^T + s c+^T.
            c, n = self.shifts, float(self.n_rows)
            for total, role in ((self.cross_pos, 1), (self.cross_neg, 2)):
                total += torch.outer(c[0], self.sums[role] - n * c[role])
                total += torch.outer(self.sums[0], c[role])
            self.shifts = None
        sums = self.sums.cpu().numpy()
        return LayerMoments(
            self.n_rows,
            sums[0].copy(),
            sums[1].copy(),
            sums[2].copy(),
            self.cross_pos.cpu().numpy(),
            self.cross_neg.cpu().numpy(),
        )


def store_moments(
    url: str,
    spec: StoreSpec,
    device: torch.device,
    *,
    map_name: str = "linear",
    scale: float = 1.0,
    chunk_rows: int = 4096,
    precision: Precision = "float64",
    layers: Sequence[int] | None = None,
    checks: Mapping[int, LayerCheck] | None = None,
    on_block: Callable[[], None] | None = None,
) -> dict[int, LayerMoments]:
    """The statistics pass of :func:`sea_dist.fit.streaming.compute_moments` on a torch device.

    Args:
        url: store URL.
        spec: the store's spec.
        device: the torch device.
        map_name, scale: feature map applied to every row before the sums.
        chunk_rows: upper bound on rows read per block.
        precision: ``float64`` or ``mixed`` (see :class:`DeviceMoments`).
        layers: the recorded layers to include (model layer numbers); None means all.
        checks: what each layer's reads are checked against (default: the store's markers).
        on_block: called after each block (progress).

    Returns:
        Model layer number -> moments over all N rows (numpy, float64).

    Raises:
        StoreError: a damaged, missing or changed chunk, or a non-finite value.
    """
    import zarr

    from sea_dist.fit.streaming import block_ranges, layer_checks

    checks = checks if checks is not None else layer_checks(url, spec)
    ranges = block_ranges(spec.n_rows, spec.rows_per_shard, spec.d_model, chunk_rows)
    arrays = [zarr.open_array(store=url, path=role, mode="r") for role in ROLES]

    def read(layer: int, start: int, stop: int) -> list[np.ndarray]:
        check = checks[layer]
        pairs = zip(ROLES, arrays, strict=True)
        return [read_checked(array, role, check, start, stop) for role, array in pairs]

    selected = list(spec.layers if layers is None else layers)
    work = [(layer, start, stop) for layer in selected for start, stop in ranges]
    result: dict[int, LayerMoments] = {}
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, *work[0]) if work else None
        accumulator: DeviceMoments | None = None
        for index, (layer, _, _) in enumerate(work):
            assert pending is not None
            blocks = pending.result()
            pending = reader.submit(read, *work[index + 1]) if index + 1 < len(work) else None
            if accumulator is None:
                accumulator = DeviceMoments(spec.d_model, device, precision)
            accumulator.add_rows(*(accumulator.put(b, map_name, scale) for b in blocks))
            del blocks
            if on_block is not None:
                on_block()
            if index + 1 == len(work) or work[index + 1][0] != layer:
                result[layer] = accumulator.to_moments()
                accumulator = None
    return result


class TorchOps:
    """:class:`sea_dist.fit.backend.ArrayOps` in float64 on a torch device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def put(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).to(self.device)

    def get(self, a: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(a.cpu().numpy())

    def empty(self, rows: int, cols: int) -> torch.Tensor:
        return torch.empty((rows, cols), dtype=torch.float64, device=self.device)

    def svd(self, a: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        u, s, _ = torch.linalg.svd(a, full_matrices=False)
        return u, s.cpu().numpy()

    def cholesky_upper(self, a: torch.Tensor) -> torch.Tensor | None:
        lower, info = torch.linalg.cholesky_ex(a)
        return None if int(info) != 0 else lower.T

    def inv(self, a: torch.Tensor) -> torch.Tensor:
        return torch.linalg.inv(a)

    def qr_q(self, a: torch.Tensor) -> torch.Tensor:
        return torch.linalg.qr(a, mode="reduced")[0]

    def eigh_descending(self, a: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        values, vectors = torch.linalg.eigh(a)
        return values.flip(0).cpu().numpy(), vectors.flip(1)

    def hstack(self, blocks: list[torch.Tensor]) -> torch.Tensor:
        return torch.hstack(blocks)

    def vstack(self, blocks: list[torch.Tensor]) -> torch.Tensor:
        return torch.vstack(blocks)

    def diagonal(self, a: torch.Tensor) -> np.ndarray:
        return torch.diagonal(a).cpu().numpy()

    def norm(self, a: torch.Tensor) -> float:
        return float(torch.linalg.norm(a))
