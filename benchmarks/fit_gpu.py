"""Fit on a GPU: the statistics pass and the SVDs with torch on CUDA vs numpy on the CPU, one run.

Claim measured (issue 16, deliverable 5): with ``fit.device: cuda`` the statistics pass
(:class:`sea_dist.fit.torch_ops.DeviceMoments`, float64 and ``mixed``) and the exact and
randomized SVDs (:mod:`sea_dist.fit.svd` on :class:`~sea_dist.fit.torch_ops.TorchOps`) are faster
than the numpy path on the same machine's CPUs, and agree with it.

Data: in-memory float32 blocks (no store, so disk and Zarr decoding are left out of both sides),
one layer, N rows at each d, from a planted model like benchmarks/fit_scaling.py's: r = min(256,
d/2) power-law latent factors shared between the three roles with different couplings, a shared
mean and isotropic noise. K+ = 0.99.

Timed, per d: (1) the statistics pass over blocks of ``--block`` rows: numpy (float64 conversion
of each block + ``LayerMoments.add_rows``, all BLAS threads) vs the device (float32 block copied
to the GPU, cast there, float64 products; and ``mixed``: float32 products into float64 sums),
both including the copy of the result back to numpy; (2) the exact SVD of the centred Omega+
(numpy only up to ``--cpu-exact-max-d``: it grows as d^3) and (3) the randomized SVD, both on the
host and on the device. CUDA start-up is done before any timer.

Agreement: statistics as ``max |Omega_dev - Omega_cpu| / max |Omega_cpu|``; SVDs as equal k and
the relative projection gap ``||U U^T - V V^T||_F / ||V V^T||_F`` (from ``U^T V``, no d x d).

Usage::

    .venv/bin/python benchmarks/fit_gpu.py [--sizes 4096,8192] [--n 20000] [--block 2048]

About 2-4 minutes on an H100 node (16 cores). Without CUDA it says so, runs numpy against the
torch device code on the CPU at a small size (d=512, N=2000) as a smoke test, and exits 0.

Ends with ``RESULT device=... stats_speedup_d4096=<cpu/gpu> ...``: every ratio is numpy time
over device time measured in this run; ``nan`` where a side was not run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sea_dist.fit.covariance import LayerMoments
from sea_dist.fit.svd import Spectrum, exact_svd, randomized_svd
from sea_dist.fit.torch_ops import DeviceMoments

ENERGY = 0.99


def planted_blocks(d: int, n: int, block: int, seed: int = 0) -> list[list[np.ndarray]]:
    """(block, d) float32 neutral, positive, negative rows of one synthetic layer, N rows."""
    rng = np.random.default_rng([seed, d])
    r = min(256, d // 2)
    basis = np.linalg.qr(rng.standard_normal((d, r)))[0]
    loadings = ((np.arange(1, r + 1) ** -0.5)[:, None] * basis.T).astype(np.float32)
    mean = (3.0 * rng.standard_normal(d) / math.sqrt(d)).astype(np.float32)
    rho = {"positive": np.linspace(0.9, 0.5, r), "negative": np.linspace(0.5, 0.9, r)}
    noise = np.float32(0.01)
    out = []
    for start in range(0, n, block):
        rows = min(block, n - start)
        z = rng.standard_normal((rows, r), dtype=np.float32)
        roles = [mean + z @ loadings + noise * rng.standard_normal((rows, d), dtype=np.float32)]
        for role in ("positive", "negative"):
            c = rho[role].astype(np.float32)
            fresh = rng.standard_normal((rows, r), dtype=np.float32)
            latent = c * z + np.sqrt(1 - c**2) * fresh
            own = noise * rng.standard_normal((rows, d), dtype=np.float32)
            roles.append(mean + latent @ loadings + own)
        out.append(roles)
    return out


def timed(run: Callable[[], Any], sync: bool) -> tuple[Any, float]:
    if sync:
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = run()
    if sync:
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def cpu_pass(blocks: list[list[np.ndarray]]) -> LayerMoments:
    d = blocks[0][0].shape[1]
    moments, scratch = LayerMoments.empty(d, keep_rows=False), np.empty((d, d))
    for neutral, positive, negative in blocks:
        moments.add_rows(
            np.asarray(neutral, dtype=np.float64),
            np.asarray(positive, dtype=np.float64),
            np.asarray(negative, dtype=np.float64),
            scratch=scratch,
        )
    return moments


def device_pass(blocks: list[list[np.ndarray]], device: torch.device, precision: str) -> Any:
    moments = DeviceMoments(blocks[0][0].shape[1], device, precision)  # type: ignore[arg-type]
    for part in blocks:
        moments.add_rows(*(moments.put(b) for b in part))
    return moments.to_moments()


def omega_error(found: LayerMoments, expected: LayerMoments) -> float:
    a = found.cross_covariance("pos", centre=True)
    b = expected.cross_covariance("pos", centre=True)
    return float(np.abs(a - b).max() / np.abs(b).max())


def projection_gap(u: np.ndarray, v: np.ndarray) -> float:
    """Relative ``||U U^T - V V^T||_F`` for orthonormal U (d, k) and V (d, m)."""
    squared = u.shape[1] + v.shape[1] - 2.0 * float(np.sum((u.T @ v) ** 2))
    return math.sqrt(max(squared, 0.0) / v.shape[1])


def svd_row(name: str, host: Spectrum | None, t_host: float, dev: Spectrum, t_dev: float) -> dict:
    agree = (
        "nan" if host is None else f"k {host.k}/{dev.k}, gap {projection_gap(dev.U, host.U):.1e}"
    )
    return {"step": name, "cpu": t_host, "dev": t_dev, "agreement": agree}


def run_size(
    d: int, n: int, block: int, device: torch.device, cpu_exact_max_d: int
) -> tuple[list[dict], dict]:
    sync = device.type == "cuda"
    started = time.perf_counter()
    blocks = planted_blocks(d, n, block)
    print(f"d={d} N={n}: data in {time.perf_counter() - started:.1f} s", flush=True)
    rows: list[dict] = []
    host, t_host = timed(lambda: cpu_pass(blocks), False)
    dev64, t_dev64 = timed(lambda: device_pass(blocks, device, "float64"), sync)
    mixed, t_mixed = timed(lambda: device_pass(blocks, device, "mixed"), sync)
    err64, err_mixed = omega_error(dev64, host), omega_error(mixed, host)
    rows.append({"step": "stats f64", "cpu": t_host, "dev": t_dev64, "agreement": f"{err64:.1e}"})
    rows.append(
        {"step": "stats mixed", "cpu": t_host, "dev": t_mixed, "agreement": f"{err_mixed:.1e}"}
    )
    del dev64, mixed
    print(f"  statistics: cpu {t_host:.2f} s, device {t_dev64:.2f} s", flush=True)
    omega = host.cross_covariance("pos", centre=True, in_place=True)
    del host
    dev_exact, t_dev_exact = timed(lambda: exact_svd(omega, ENERGY, device=device), sync)
    host_exact, t_host_exact = None, math.nan
    if d <= cpu_exact_max_d:
        host_exact, t_host_exact = timed(lambda: exact_svd(omega, ENERGY), False)
    rows.append(svd_row("exact SVD", host_exact, t_host_exact, dev_exact, t_dev_exact))
    print(f"  exact SVD: cpu {t_host_exact:.2f} s, device {t_dev_exact:.2f} s", flush=True)
    host_rand, t_host_rand = timed(lambda: randomized_svd(omega, ENERGY), False)
    dev_rand, t_dev_rand = timed(lambda: randomized_svd(omega, ENERGY, device=device), sync)
    rows.append(
        svd_row(f"randomized ({dev_rand.path})", host_rand, t_host_rand, dev_rand, t_dev_rand)
    )
    print(f"  randomized SVD: cpu {t_host_rand:.2f} s, device {t_dev_rand:.2f} s", flush=True)
    result = {
        f"stats_speedup_d{d}": t_host / t_dev64,
        f"stats_mixed_speedup_d{d}": t_host / t_mixed,
        f"stats_error_d{d}": err64,
        f"stats_mixed_error_d{d}": err_mixed,
        f"exact_svd_speedup_d{d}": t_host_exact / t_dev_exact,
        f"randomized_svd_speedup_d{d}": t_host_rand / t_dev_rand,
        f"randomized_gap_d{d}": projection_gap(dev_rand.U, host_rand.U)
        if dev_rand.k == host_rand.k
        else math.nan,
    }
    return [{"d": d, **row} for row in rows], result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="4096,8192", help="comma-separated d values")
    parser.add_argument("--n", type=int, default=20000, help="rows N")
    parser.add_argument("--block", type=int, default=2048, help="rows per block of the pass")
    parser.add_argument("--cpu-exact-max-d", type=int, default=4096, help="numpy exact SVD up to")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if torch.cuda.is_available():
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(device)
        warm = torch.eye(64, dtype=torch.float64, device=device)  # CUDA context, cuBLAS, cuSOLVER
        torch.linalg.svd(warm @ warm)
        torch.linalg.eigh(warm)
        torch.linalg.cholesky_ex(warm)
        torch.cuda.synchronize()
    else:
        print(
            "no CUDA device visible (torch.cuda.is_available() is False): running numpy against "
            "the torch device code on the CPU at d=512, N=2000 as a smoke test; no GPU numbers",
            flush=True,
        )
        device, name = torch.device("cpu"), "cpu-torch-no-cuda"
        sizes, args.n, args.block = [512], 2000, 512
    print(
        f"device: {name}; torch {torch.__version__}; numpy {np.__version__}; "
        f"{os.cpu_count()} CPU cores (numpy BLAS uses all of them)",
        flush=True,
    )
    table: list[dict] = []
    results: dict[str, float] = {}
    for d in sizes:
        rows, result = run_size(d, args.n, args.block, device, args.cpu_exact_max_d)
        table += rows
        results.update(result)
    print(f"\n{'d':>6} {'step':<26} {'numpy CPU s':>12} {'device s':>10} {'ratio':>8}  agreement")
    for row in table:
        ratio = row["cpu"] / row["dev"]
        print(
            f"{row['d']:>6} {row['step']:<26} {row['cpu']:>12.3f} {row['dev']:>10.3f} "
            f"{ratio:>8.1f}  {row['agreement']}"
        )
    label = name.replace(" ", "_")
    fields = " ".join(f"{key}={value:.3g}" for key, value in results.items())
    print(f"RESULT device={label} n={args.n} {fields}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
