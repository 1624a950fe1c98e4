"""Fit scaling: sea-dist vs the reference code's algorithm, in one run, on realistic synthetic data.

Claim measured: ``sea-dist fit`` (Dask streaming float64 cross-covariances + automatic SVD path)
is much faster than the reference code's algorithm at large d, agrees with it, and its memory does
not grow with N.

The reference code's algorithm (yfqiu-nlp/sea-llm, as described in the issue): load H, H+, H- in
memory, form Omega+ = H^T H+ / N and Omega- in float64, take the full SVD (``np.linalg.svd``) of
both and call ``np.linalg.matrix_rank`` on both. It is run here with the same centring as sea-dist
(so the projections are comparable) and the same k rule; its timer starts after the data is in
memory (reading is free for it), while sea-dist's timer covers reading the Zarr store from disk
and writing the fit folder. Each configuration runs in a fresh subprocess, so peak RSS
(``ru_maxrss``) is per configuration. Both workers get the same number of BLAS threads, 1 by
default: on this 2-core machine, shared with other jobs, multithreaded OpenBLAS slows down
erratically (up to 20x on mid-sized calls, measured) whenever another process holds a core,
which would make single runs meaningless. With one BLAS thread, sea-dist still runs two layers'
tasks at once on the two cores (the d=8192 case); single-layer stores use one core, like the
reference.

Data (written once under ``--data-dir``, default /tmp/sea-fit-bench; one layer per store for the
grid, four for d=8192). Per layer, with r = min(256, d/2) latent factors z ~ N(0, I_r):

    h  = mu        + A (sigma * z)   + noise         sigma_j^2 = j^-1 (power law, j = 1..r)
    h+ = mu + dp   + A (sigma * z+)  + noise+        z+ = rho+ * z + sqrt(1 - rho+^2) * z'
    h- = mu + dn   + A (sigma * z-)  + noise-        z- = rho- * z + sqrt(1 - rho-^2) * z''

A is a random orthonormal d x r basis, rho+ falls from 0.9 to 0.5 and rho- rises from 0.5 to 0.9
across the factors (so Omega+ and Omega- differ), mu is a shared mean with ||mu||^2 = 10 x the
total latent variance (the residual-stream situation where uncentred fits collapse to k = 1), dp
and dn are small shifts (norm 0.5), and the noise is isotropic with variance 2e-4 per dimension,
half of it shared between h and h+/h-. The centred cross-covariances thus have a power-law
spectrum s_j ~ rho_j / j over r directions above a noise floor that shrinks with N. K+ = K- = 0.99.

Usage::

    .venv/bin/python benchmarks/fit_scaling.py [--data-dir DIR] [--skip-8192] [--quick]
        [--reference-n 4000] [--blas-threads 1]

Run time: the reference at d=4096 takes 3-8 minutes per N on one BLAS thread and the d=8192 case
(21 TFLOP of float64 products) 5-20 minutes, depending on how busy the machine is; the first run
also writes about 10 GB of stores. ``--reference-n 4000 --skip-8192`` keeps a run near 10 minutes.

Ends with ``RESULT speedup_d4096=<x> agreement_d4096=<y> rss_ratio_n20000_vs_n1000_d2048=<z>``:
the speedup is at N=4000 (the setting the target was stated for), the agreement the worst over
all N at d=4096, and the RSS ratio uses the automatic path at both N.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

GENERATOR_VERSION = 1
ROLES = ("neutral", "positive", "negative")
ROWS_PER_SHARD = 250
NOISE_VARIANCE = 2e-4
SHARED_NOISE = 0.5
MEAN_TO_VARIANCE = 10.0
ENERGY = 0.99


# ----------------------------------------------------------------------------------------- data
def layer_model(d: int, layer: int, seed: int) -> dict[str, np.ndarray]:
    """The fixed parameters of one synthetic layer (see the module docstring)."""
    rng = np.random.default_rng([seed, d, layer])
    r = min(256, d // 2)
    sigma = np.arange(1, r + 1) ** -0.5
    mean = rng.standard_normal(d)
    mean *= np.sqrt(MEAN_TO_VARIANCE * np.sum(sigma**2)) / np.linalg.norm(mean)

    def shift() -> np.ndarray:
        v = rng.standard_normal(d)
        return 0.5 * v / np.linalg.norm(v)

    return {
        "basis": np.linalg.qr(rng.standard_normal((d, r)))[0].astype(np.float32),
        "sigma": sigma.astype(np.float32),
        "rho_pos": np.linspace(0.9, 0.5, r).astype(np.float32),
        "rho_neg": np.linspace(0.5, 0.9, r).astype(np.float32),
        "mean": mean.astype(np.float32),
        "shift_pos": shift().astype(np.float32),
        "shift_neg": shift().astype(np.float32),
    }


def shard_rows(
    model: dict[str, np.ndarray], rows: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """(rows, d) float32 neutral, positive, negative activations of one layer."""
    d, r = model["basis"].shape
    loadings = (model["sigma"][:, None] * model["basis"].T).astype(np.float32)  # (r, d)
    z = rng.standard_normal((rows, r), dtype=np.float32)
    shared = rng.standard_normal((rows, d), dtype=np.float32)
    scale_shared = np.float32(np.sqrt(NOISE_VARIANCE * SHARED_NOISE))
    scale_own = np.float32(np.sqrt(NOISE_VARIANCE * (1 - SHARED_NOISE)))
    out = []
    for role in ROLES:
        if role == "neutral":
            latent, offset = z, model["mean"]
        else:
            rho = model["rho_pos" if role == "positive" else "rho_neg"]
            fresh = rng.standard_normal((rows, r), dtype=np.float32)
            latent = rho * z + np.sqrt(1 - rho**2) * fresh
            offset = model["mean"] + model["shift_pos" if role == "positive" else "shift_neg"]
        noise = scale_shared * shared + scale_own * rng.standard_normal((rows, d), dtype=np.float32)
        out.append(offset + latent @ loadings + noise)
    return out


def ensure_store(data_dir: Path, d: int, n: int, n_layers: int, seed: int = 0) -> str:
    """Write the benchmark store once (reused while its parameters match)."""
    from sea_dist.store import ActivationStore, StoreSpec

    url = data_dir / f"store-d{d}-n{n}-l{n_layers}.zarr"
    marker = url / "bench.json"
    params = {"version": GENERATOR_VERSION, "d": d, "n": n, "layers": n_layers, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == params:
        if ActivationStore.open(str(url)).is_complete:
            return str(url)
    started = time.perf_counter()
    spec = StoreSpec(
        model_id="synthetic-power-law",
        model_revision=str(GENERATOR_VERSION),
        architecture="synthetic",
        d_model=d,
        n_model_layers=n_layers,
        tokenizer_fingerprint="none",
        site="residual",
        site_template=None,
        layers=tuple(range(n_layers)),
        token="last",
        neutral="prompt",
        max_new_tokens=0,
        demonstrations_fingerprint=json.dumps(params, sort_keys=True),
        n_rows=n,
        rows_per_shard=ROWS_PER_SHARD,
    )
    store = ActivationStore.create(str(url), spec, overwrite=True)
    models = [layer_model(d, layer, seed) for layer in range(n_layers)]
    for shard, start, stop in store.iter_shards():
        # Per-shard seeds: the first rows of a large store equal a smaller store's rows.
        rng = np.random.default_rng([seed, d, 10_000 + shard])
        per_layer = [shard_rows(model, stop - start, rng) for model in models]
        arrays = {
            role: np.stack([rows[i] for rows in per_layer], axis=1) for i, role in enumerate(ROLES)
        }
        ids = [f"row-{i}" for i in range(start, stop)]
        store.write_shard(shard, arrays, ids, [""] * len(ids), np.zeros(len(ids), np.int64))
    marker.write_text(json.dumps(params))
    print(f"  wrote {url.name} in {time.perf_counter() - started:.1f}s", flush=True)
    return str(url)


# -------------------------------------------------------------------------------------- workers
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


class _PassTimer(logging.Handler):
    """Picks the statistics-pass time out of sea-dist's log."""

    seconds = float("nan")

    def emit(self, record: logging.LogRecord) -> None:
        # The first pass is the timed fit; a later one (the uncentred k) must not overwrite it.
        if record.getMessage().startswith("statistics pass done in") and np.isnan(self.seconds):
            _PassTimer.seconds = float(record.args[0])  # type: ignore[arg-type,index]


def worker_sea(url: str, result: Path, svd: str, uncentred_layers: int) -> None:
    """Fit with the public API, timed; then the uncentred k (untimed, after the RSS reading)."""
    import dask.threaded  # noqa: F401  (imports are paid once per process: not timed)
    import tqdm.auto  # noqa: F401

    import sea_dist.fit.streaming  # noqa: F401
    from sea_dist.config import FitConfig
    from sea_dist.fit import fit_store

    logging.getLogger("sea_dist").setLevel(logging.INFO)
    logging.getLogger("sea_dist").addHandler(_PassTimer())
    options: dict[str, Any] = {"svd": svd, "positive_energy": ENERGY, "negative_energy": ENERGY}
    with tempfile.TemporaryDirectory(dir=result.parent) as tmp:
        started = time.perf_counter()
        fitted = fit_store(url, FitConfig(**options), out=Path(tmp) / "fit")
        seconds = time.perf_counter() - started
    rss = peak_rss_mb()
    vectors = {f"{p.layer}.pos": p.U_pos for p in fitted.layers}
    vectors.update({f"{p.layer}.neg": p.U_neg for p in fitted.layers})
    np.savez(result.with_suffix(".npz"), **vectors)  # type: ignore[arg-type]
    # Untimed, after the RSS reading; two partitions so a one-layer pass uses both cores.
    layers = [p.layer for p in fitted.layers][:uncentred_layers]
    uncentred = fit_store(url, FitConfig(centre=False, **options), layers=layers, partitions=2)
    result.write_text(
        json.dumps(
            {
                "seconds": seconds,
                "pass_seconds": _PassTimer.seconds,
                "rss_mb": rss,
                "paths": sorted({p.svd_path for p in fitted.layers}),
                "k": [[p.k_pos, p.k_neg] for p in fitted.layers],
                "k_uncentred": [[p.k_pos, p.k_neg] for p in uncentred.layers],
            }
        )
    )


def worker_reference(url: str, result: Path) -> None:
    """The reference code's algorithm on the same store (data loaded before the timer starts)."""
    from sea_dist.store import ActivationStore

    store = ActivationStore.open(url)
    timings, ks, projections = [], [], {}
    for index, layer in enumerate(store.spec.layers):
        neutral, positive, negative = (
            store.read(role)[:, index]
            for role in ROLES  # float32 in memory, untimed
        )
        started = time.perf_counter()
        h = neutral.astype(np.float64)
        h -= h.mean(axis=0)
        omegas = []
        for other in (positive, negative):
            x = other.astype(np.float64)
            x -= x.mean(axis=0)
            omegas.append(h.T @ x / h.shape[0])
            del x
        svds = [np.linalg.svd(omega) for omega in omegas]
        ranks = [int(np.linalg.matrix_rank(omega)) for omega in omegas]
        timings.append(time.perf_counter() - started)
        k_layer = []
        for sign, (u, s, _) in zip(("pos", "neg"), svds):
            cumulative = np.cumsum(s**2) / np.sum(s**2)
            k = int(np.argmax(cumulative >= ENERGY)) + 1
            projections[f"{layer}.{sign}"] = u[:, :k]
            k_layer.append(k)
        ks.append(k_layer)
        del svds, omegas, ranks
    rss = peak_rss_mb()
    np.savez(result.with_suffix(".npz"), **projections)  # type: ignore[arg-type]
    result.write_text(json.dumps({"seconds": sum(timings), "rss_mb": rss, "k": ks}))


BLAS_THREADS = {"value": "1"}


def run_worker(kind: str, url: str, work: Path, tag: str, *extra: str) -> dict[str, Any]:
    """Run one configuration in a fresh process (so ``ru_maxrss`` is its own peak)."""
    result = work / f"{tag}-{kind}.json"
    cmd = [sys.executable, __file__, "--worker", kind, "--store", url, "--result", str(result)]
    threads = BLAS_THREADS["value"]
    env = dict(
        os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads
    )
    done = subprocess.run([*cmd, *extra], capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed for {tag}:\n{done.stderr[-3000:]}")
    info = json.loads(result.read_text())
    info["npz"] = str(result.with_suffix(".npz"))
    return info


def agreement(sea_npz: str, ref_npz: str) -> tuple[float, bool]:
    """Worst relative Frobenius gap ||P - P_ref||_F / ||P_ref||_F over layers and signs."""
    sea, ref = np.load(sea_npz), np.load(ref_npz)
    worst, same_k = 0.0, True
    for key in ref.files:
        u, v = sea[key].astype(np.float64), ref[key]
        same_k &= u.shape == v.shape
        # ||UU^T - VV^T||_F^2 = k_u + k_v - 2 ||U^T V||_F^2, but computed without cancellation:
        gap = np.sqrt(
            np.linalg.norm(u - v @ (v.T @ u)) ** 2 + np.linalg.norm(v - u @ (u.T @ v)) ** 2
        )
        worst = max(worst, float(gap / np.sqrt(v.shape[1])))
    return worst, same_k


# ---------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/tmp/sea-fit-bench")
    parser.add_argument("--skip-8192", action="store_true", help="skip the d=8192, 4-layer case")
    parser.add_argument("--quick", action="store_true", help="d in {576, 2048} only")
    parser.add_argument("--d", help="comma-separated d values instead of the grid (smoke runs)")
    parser.add_argument("--n", help="comma-separated N values instead of the grid (smoke runs)")
    parser.add_argument(
        "--blas-threads",
        default="1",
        help="BLAS threads in both workers (default 1, see the module docstring)",
    )
    parser.add_argument(
        "--reference-n",
        default="1000,4000,20000",
        help="N values at d=4096 where the reference runs (it is slow)",
    )
    parser.add_argument("--worker", choices=("sea", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--svd", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--uncentred-layers", type=int, default=99, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "sea":
        return worker_sea(args.store, Path(args.result), args.svd, args.uncentred_layers)
    if args.worker == "reference":
        return worker_reference(args.store, Path(args.result))

    BLAS_THREADS["value"] = args.blas_threads
    reference_n_4096 = {int(v) for v in args.reference_n.split(",") if v}
    data_dir = Path(args.data_dir)
    work = data_dir / "results"
    work.mkdir(parents=True, exist_ok=True)
    grid_d: tuple[int, ...] = (576, 2048) if args.quick else (576, 2048, 4096)
    grid_n: tuple[int, ...] = (1000, 4000, 20000)
    if args.d:
        grid_d = tuple(int(v) for v in args.d.split(","))
    if args.n:
        grid_n = tuple(int(v) for v in args.n.split(","))
    started = time.perf_counter()
    print(
        f"benchmark data and results under {data_dir}; BLAS threads per worker: "
        f"{args.blas_threads}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []

    def record(
        d: int, n: int, layers: int, label: str, sea: dict[str, Any], ref: dict[str, Any] | None
    ) -> None:
        row = {"d": d, "n": n, "layers": layers, "label": label, "sea": sea, "ref": ref}
        if ref is not None:
            row["agreement"], row["same_k"] = agreement(sea["npz"], ref["npz"])
            row["same_k"] &= sea["k"] == ref["k"]
        rows.append(row)
        ref_s = f"{ref['seconds']:.2f}s" if ref else "-"
        print(
            f"  d={d} N={n} {label}: sea-dist {sea['seconds']:.2f}s (pass "
            f"{sea['pass_seconds']:.2f}s, {'/'.join(sea['paths'])}), reference {ref_s}, "
            f"k={sea['k']}, uncentred k={sea['k_uncentred']}",
            flush=True,
        )

    for d in grid_d:
        for n in grid_n:
            url = ensure_store(data_dir, d, n, 1)
            tag = f"d{d}-n{n}"
            sea = run_worker("sea", url, work, tag)
            skip = d == 4096 and n not in reference_n_4096
            ref = None if skip else run_worker("reference", url, work, tag)
            record(d, n, 1, "auto", sea, ref)
            if d == 2048 and n in (1000, 4000):
                # The thresholds of the automatic choice: the other paths at d=2048.
                forced = "randomized" if n == 1000 else "exact"
                other = run_worker("sea", url, work, f"{tag}-{forced}", "--svd", forced)
                record(d, n, 1, forced, other, ref)
    if not args.skip_8192:
        url = ensure_store(data_dir, 8192, 20000, 4)
        sea = run_worker("sea", url, work, "d8192-n20000", "--uncentred-layers", "1")
        record(8192, 20000, 4, "auto", sea, None)

    print()
    header = (
        f"{'d':>5} {'N':>6} {'L':>2} {'path':>10} {'k+/k- centred':>14} "
        f"{'k uncentred':>12} {'sea s':>8} {'pass s':>7} {'ref s':>8} {'speedup':>8} "
        f"{'sea MB':>8} {'ref MB':>8} {'agreement':>10} {'same k':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        sea, ref = row["sea"], row["ref"]
        k = ",".join(f"{a}/{b}" for a, b in sea["k"])
        ku = ",".join(f"{a}/{b}" for a, b in sea["k_uncentred"])
        path = row["label"] if row["label"] != "auto" else "/".join(sea["paths"])
        print(
            f"{row['d']:>5} {row['n']:>6} {row['layers']:>2} {path:>10} {k:>14} {ku:>12} "
            f"{sea['seconds']:>8.2f} {sea['pass_seconds']:>7.2f} "
            f"{ref['seconds'] if ref else float('nan'):>8.2f} "
            f"{ref['seconds'] / sea['seconds'] if ref else float('nan'):>7.1f}x "
            f"{sea['rss_mb']:>8.0f} {ref['rss_mb'] if ref else float('nan'):>8.0f} "
            f"{row.get('agreement', float('nan')):>10.1e} {str(row.get('same_k', '-')):>6}"
        )
    print(
        f"\ntotal wall time {time.perf_counter() - started:.0f}s; timings are single runs on a "
        "machine shared with other jobs."
    )

    def find(d: int, n: int, label: str = "auto") -> dict[str, Any] | None:
        return next((r for r in rows if (r["d"], r["n"], r["label"]) == (d, n, label)), None)

    at4096 = find(4096, 4000)
    speedup = at4096["ref"]["seconds"] / at4096["sea"]["seconds"] if at4096 else float("nan")
    agree = max(
        (r["agreement"] for r in rows if r["d"] == 4096 and "agreement" in r), default=float("nan")
    )
    big, small = find(2048, 20000), find(2048, 1000)
    ratio = big["sea"]["rss_mb"] / small["sea"]["rss_mb"] if big and small else float("nan")
    same_path = find(2048, 1000, "randomized")
    if big and same_path:
        # N=1000 < d takes the thin-QR route; the same (streamed, randomized) path at both N:
        print(
            "peak RSS, randomized path at d=2048: "
            + ", ".join(
                f"N={r['n']}: {r['sea']['rss_mb']:.0f} MB"
                for r in (same_path, find(2048, 4000), big)
                if r
            )
            + f" (N=20000 / N=1000 = {big['sea']['rss_mb'] / same_path['sea']['rss_mb']:.2f})"
        )
    print(
        f"RESULT speedup_d4096={speedup:.1f} agreement_d4096={agree:.1e} "
        f"rss_ratio_n20000_vs_n1000_d2048={ratio:.2f}"
    )


if __name__ == "__main__":
    main()
