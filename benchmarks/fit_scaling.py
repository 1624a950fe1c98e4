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
which would make single runs meaningless. With one BLAS thread per call, sea-dist's pass splits
each layer's rows into one partition per core (``auto_partitions``), so a single-layer store
keeps every core busy; the reference uses one core.

Floor. The statistics pass needs ``4 N d^2`` flops per layer (two d x d products of N rows). The
floor is that count over the all-core GEMM rate, measured in the same run, in a fresh process
with the same BLAS thread setting: one thread per core (cores // BLAS threads), each timing
square GEMMs, float64 for the float64 pass and float32 for ``fit.precision: mixed``. Each row
prints the pass time next to its floor and their ratio.

Mixed precision. At the largest d of the grid, where the fit streams products (not the QR rows),
the fit is run again with ``precision: mixed``; its projections are compared with the float64
fit's (same metric as the reference agreement) and, in the mixed worker after the timed fit, the
centred cross-covariances of both precisions are compared (max |error| / max |Omega|).

Data (written once under ``--data-dir``, default /tmp/sea-fit-bench; one layer per store for the
grid, ``--layers-8192`` (default 1) for d=8192, whose peak RSS is the memory claim). Per layer,
with r = min(256, d/2) latent factors z ~ N(0, I_r):

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
        [--reference-n 4000] [--blas-threads 1] [--layers-8192 1]

Run time: the reference at d=4096 takes 3-8 minutes per N on one BLAS thread and the d=8192 case
(5.4 TFLOP of float64 products per layer) a few minutes per layer; the first run also writes
several GB of stores. ``--quick`` (d in {576, 2048}, no d=8192 unless ``--with-8192``) takes a
few minutes; ``--reference-n 4000`` keeps a full run near 15 minutes.

Ends with ``RESULT speedup_d4096=<x> agreement_d4096=<y> rss_ratio_n20000_vs_n1000_d2048=<z>
stats_over_floor_d4096_n20000=<a> stats_cpu_over_floor_d4096_n20000=<a'>
mixed_agreement_d4096=<b> rss_mb_d8192_n20000=<c>``: the speedup is at N=4000 (the setting the
target was stated for), the agreement the worst over all N at d=4096, the RSS ratio uses the
automatic path at both N; the floor ratio is the float64 pass over its floor (wall seconds; the
CPU variant compares the pass's CPU seconds with the GEMM's flops per CPU second, which other
jobs on a shared machine do not change); the mixed agreement the worst of the projection gap and
the cross-covariance error at d=4096; the RSS the peak of the d=8192 fit's process (nan where
not run).
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
import threading
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
    """Picks the statistics-pass time out of sea-dist's log, and the process's CPU seconds (all
    threads) between the pass's first and last record: on a shared machine CPU seconds over wall
    seconds says how many cores the pass kept busy, whatever the other jobs took."""

    seconds = float("nan")
    cpu_started = float("nan")
    cpu_seconds = float("nan")

    def emit(self, record: logging.LogRecord) -> None:
        # The first pass is the timed fit; a later one (the uncentred k) must not overwrite it.
        message = record.getMessage()
        if message.startswith("statistics pass:") and np.isnan(self.cpu_started):
            _PassTimer.cpu_started = time.process_time()
        if message.startswith("statistics pass done in") and np.isnan(self.seconds):
            _PassTimer.seconds = float(record.args[0])  # type: ignore[arg-type,index]
            _PassTimer.cpu_seconds = time.process_time() - self.cpu_started


def _gemms(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for _ in range(2):
        np.matmul(a.T, b, out=out)


def worker_floor(result: Path, size: int = 2048, reps: int = 3) -> None:
    """All-core GEMM rates (flop/s): ``cores // BLAS threads`` threads each multiplying square
    float64 (then float32) matrices at once; the best of ``reps`` rounds of two GEMMs each."""
    threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("OPENBLAS_NUM_THREADS", "1")))
    rates = {}
    for dtype in ("float64", "float32"):
        rng = np.random.default_rng(0)
        jobs = [
            tuple(rng.standard_normal((size, size)).astype(dtype) for _ in range(3))
            for _ in range(threads)
        ]
        _gemms(*jobs[0])  # warm-up: page in, start the BLAS's threads
        best, best_cpu = float("inf"), float("inf")
        for _ in range(reps):
            workers = [threading.Thread(target=_gemms, args=job) for job in jobs]
            started, cpu_started = time.perf_counter(), time.process_time()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            best = min(best, time.perf_counter() - started)
            best_cpu = min(best_cpu, time.process_time() - cpu_started)
        rates[dtype] = threads * 2 * 2 * size**3 / best
        rates[f"{dtype}_per_cpu_second"] = threads * 2 * 2 * size**3 / best_cpu
    result.write_text(json.dumps({"threads": threads, **rates}))


def omega_error(url: str) -> float:
    """Max |mixed - float64| / max |float64| over both centred Omegas of the store's first layer."""
    from sea_dist.fit.schedulers import open_scheduler
    from sea_dist.fit.streaming import compute_moments
    from sea_dist.store import ActivationStore

    spec = ActivationStore.open(url).spec
    omegas = {}
    with open_scheduler("threads") as scheduler:
        for precision in ("float64", "mixed"):
            (moments,) = compute_moments(
                url, spec, scheduler, layers=spec.layers[:1], precision=precision
            ).values()
            omegas[precision] = [moments.cross_covariance(s, True, True) for s in ("pos", "neg")]
            del moments
    return max(
        float(np.abs(m - e).max() / np.abs(e).max())
        for m, e in zip(omegas["mixed"], omegas["float64"], strict=True)
    )


def worker_sea(url: str, result: Path, svd: str, uncentred_layers: int, precision: str) -> None:
    """Fit with the public API, timed; then the uncentred k (untimed, after the RSS reading)."""
    import dask.threaded  # noqa: F401  (imports are paid once per process: not timed)
    import tqdm.auto  # noqa: F401

    import sea_dist.fit.streaming  # noqa: F401
    from sea_dist.config import FitConfig
    from sea_dist.fit import fit_store

    logging.getLogger("sea_dist").setLevel(logging.DEBUG)  # the pass time is a debug record
    logging.getLogger("sea_dist").addHandler(_PassTimer())
    options: dict[str, Any] = {
        "svd": svd,
        "positive_energy": ENERGY,
        "negative_energy": ENERGY,
        "precision": precision,
    }
    with tempfile.TemporaryDirectory(dir=result.parent) as tmp:
        started = time.perf_counter()
        fitted = fit_store(url, FitConfig(**options), out=Path(tmp) / "fit")
        seconds = time.perf_counter() - started
    rss = peak_rss_mb()
    vectors = {f"{p.layer}.pos": p.U_pos for p in fitted.layers}
    vectors.update({f"{p.layer}.neg": p.U_neg for p in fitted.layers})
    np.savez(result.with_suffix(".npz"), **vectors)  # type: ignore[arg-type]
    # Untimed, after the RSS reading.
    layers = [p.layer for p in fitted.layers][:uncentred_layers]
    k_uncentred = []
    if layers:
        uncentred = fit_store(url, FitConfig(centre=False, **options), layers=layers)
        k_uncentred = [[p.k_pos, p.k_neg] for p in uncentred.layers]
    error = omega_error(url) if precision == "mixed" else float("nan")
    result.write_text(
        json.dumps(
            {
                "seconds": seconds,
                "pass_seconds": _PassTimer.seconds,
                "pass_cpu_seconds": _PassTimer.cpu_seconds,
                "rss_mb": rss,
                "paths": sorted({p.svd_path for p in fitted.layers}),
                "k": [[p.k_pos, p.k_neg] for p in fitted.layers],
                "k_uncentred": k_uncentred,
                "precision": precision,
                "omega_error": error,
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
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--store",
        url or "",
        "--result",
        str(result),
    ]
    threads = BLAS_THREADS["value"]
    env = dict(
        os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads
    )
    done = subprocess.run([*cmd, *extra], capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed for {tag}:\n{done.stderr[-3000:]}")
    info: dict[str, Any] = json.loads(result.read_text())
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
    parser.add_argument(
        "--quick", action="store_true", help="d in {576, 2048}; no d=8192 unless --with-8192"
    )
    parser.add_argument("--with-8192", action="store_true", help="the d=8192 case with --quick")
    parser.add_argument("--layers-8192", type=int, default=1, help="layers of the d=8192 store")
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
    parser.add_argument("--worker", choices=("sea", "reference", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float64", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--svd", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--uncentred-layers", type=int, default=99, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "sea":
        return worker_sea(
            args.store, Path(args.result), args.svd, args.uncentred_layers, args.precision
        )
    if args.worker == "floor":
        return worker_floor(Path(args.result))
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
    floor = run_worker("floor", "", work, "floor")
    print(
        f"  all-core GEMM rate ({floor['threads']} threads): float64 {floor['float64'] / 1e9:.0f} "
        f"GFLOP/s, float32 {floor['float32'] / 1e9:.0f} GFLOP/s",
        flush=True,
    )
    rows: list[dict[str, Any]] = []

    def floor_seconds(d: int, n: int, layers: int, sea: dict[str, Any]) -> float:
        """The pass's flops over the all-core rate of its precision (nan for the thin-QR route)."""
        if sea["paths"] == ["qr"]:
            return float("nan")
        rate = floor["float32" if sea.get("precision") == "mixed" else "float64"]
        return float(layers * 4 * n * d * d / rate)

    def cpu_floor_seconds(d: int, n: int, layers: int, sea: dict[str, Any]) -> float:
        """The pass's flops over the GEMM rate per CPU second (contention-independent floor)."""
        if sea["paths"] == ["qr"]:
            return float("nan")
        precision = "float32" if sea.get("precision") == "mixed" else "float64"
        return float(layers * 4 * n * d * d / floor[f"{precision}_per_cpu_second"])

    def record(
        d: int, n: int, layers: int, label: str, sea: dict[str, Any], ref: dict[str, Any] | None
    ) -> None:
        row = {"d": d, "n": n, "layers": layers, "label": label, "sea": sea, "ref": ref}
        if ref is not None:
            row["agreement"], row["same_k"] = agreement(sea["npz"], ref["npz"])
            row["same_k"] &= sea["k"] == ref["k"]
        row["floor"] = floor_seconds(d, n, layers, sea)
        row["cpu_floor"] = cpu_floor_seconds(d, n, layers, sea)
        rows.append(row)
        ref_s = f"{ref['seconds']:.2f}s" if ref else "-"
        print(
            f"  d={d} N={n} {label}: sea-dist {sea['seconds']:.2f}s (pass "
            f"{sea['pass_seconds']:.2f}s, floor {row['floor']:.2f}s, {'/'.join(sea['paths'])}), "
            f"reference {ref_s}, k={sea['k']}, uncentred k={sea['k_uncentred']}, "
            f"RSS {sea['rss_mb']:.0f} MB",
            flush=True,
        )
        cpu = sea["pass_cpu_seconds"]
        print(
            f"    pass CPU {cpu:.1f} s = {cpu / sea['pass_seconds']:.2f} cores busy on average; "
            f"CPU seconds over the CPU-seconds floor {cpu / row['cpu_floor']:.2f}x",
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
            if d == max(grid_d) and sea["paths"] != ["qr"]:  # mixed: products only
                mixed = run_worker(
                    "sea",
                    url,
                    work,
                    f"{tag}-mixed",
                    "--precision",
                    "mixed",
                    "--uncentred-layers",
                    "0",
                )
                record(d, n, 1, "mixed", mixed, None)
                rows[-1]["agreement"], _ = agreement(mixed["npz"], sea["npz"])
                rows[-1]["same_k"] = mixed["k"] == sea["k"]
                print(
                    f"    mixed vs float64: projections {rows[-1]['agreement']:.1e}, centred "
                    f"Omega max error {mixed['omega_error']:.1e}, same k {rows[-1]['same_k']}",
                    flush=True,
                )
    if not args.skip_8192 and (args.with_8192 or not args.quick):
        layers_8192 = args.layers_8192
        url = ensure_store(data_dir, 8192, 20000, layers_8192)
        sea = run_worker("sea", url, work, "d8192-n20000", "--uncentred-layers", "0")
        record(8192, 20000, layers_8192, "auto", sea, None)

    print()
    header = (
        f"{'d':>5} {'N':>6} {'L':>2} {'path':>10} {'k+/k- centred':>14} "
        f"{'k uncentred':>12} {'sea s':>8} {'pass s':>7} {'ref s':>8} {'speedup':>8} "
        f"{'sea MB':>8} {'ref MB':>8} {'agreement':>10} {'same k':>6} {'floor s':>7} "
        f"{'pass/floor':>10}"
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
            f"{row.get('agreement', float('nan')):>10.1e} {str(row.get('same_k', '-')):>6} "
            f"{row['floor']:>7.2f} {sea['pass_seconds'] / row['floor']:>9.2f}x"
        )
    print(
        f"\ntotal wall time {time.perf_counter() - started:.0f}s; timings are single runs on a "
        "machine shared with other jobs."
    )

    def find(d: int, n: int, label: str = "auto") -> dict[str, Any] | None:
        return next((r for r in rows if (r["d"], r["n"], r["label"]) == (d, n, label)), None)

    at4096 = find(4096, 4000)
    speedup = (
        at4096["ref"]["seconds"] / at4096["sea"]["seconds"]
        if at4096 and at4096["ref"]
        else float("nan")
    )
    agree = max(
        (r["agreement"] for r in rows if r["d"] == 4096 and r["ref"] and "agreement" in r),
        default=float("nan"),
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
    at_floor = find(4096, 20000)
    over_floor = at_floor["sea"]["pass_seconds"] / at_floor["floor"] if at_floor else float("nan")
    cpu_over = (
        at_floor["sea"]["pass_cpu_seconds"] / at_floor["cpu_floor"] if at_floor else float("nan")
    )
    mixed_rows = [r for r in rows if r["d"] == 4096 and r["label"] == "mixed"]
    mixed_agree = max(
        (max(r["agreement"], r["sea"]["omega_error"]) for r in mixed_rows), default=float("nan")
    )
    big_d = find(8192, 20000)
    rss_8192 = big_d["sea"]["rss_mb"] if big_d else float("nan")
    for r in (r for r in rows if r["label"] == "mixed"):
        print(
            f"mixed d={r['d']} N={r['n']}: pass/float32 floor "
            f"{r['sea']['pass_seconds'] / r['floor']:.2f}x, "
            f"projections vs float64 {r['agreement']:.1e}, Omega {r['sea']['omega_error']:.1e}"
        )
    print(
        f"RESULT speedup_d4096={speedup:.1f} agreement_d4096={agree:.1e} "
        f"rss_ratio_n20000_vs_n1000_d2048={ratio:.2f} stats_over_floor_d4096_n20000="
        f"{over_floor:.2f} stats_cpu_over_floor_d4096_n20000={cpu_over:.2f} "
        f"mixed_agreement_d4096={mixed_agree:.1e} "
        f"rss_mb_d8192_n20000={rss_8192:.0f}"
    )


if __name__ == "__main__":
    main()
