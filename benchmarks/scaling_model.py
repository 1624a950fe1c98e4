"""The scaling model of docs/scaling.md: what a run costs from measured unit costs.

Not a measurement: it combines the unit costs measured on this project's machines (the
constants under MEASURED, each with where it came from) with the assumptions a GPU run needs
(ASSUMED: no GPU was available when this was written; replace them with the figures
``benchmarks/collect_gpu.py`` and ``benchmarks/fit_gpu.py`` print on your hardware) and prints
the tables of docs/scaling.md::

    .venv/bin/python benchmarks/scaling_model.py [--gpus 1 8 64]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

GIB = 2**30

# --- measured (2-core CPU machine, float64 unless said) -------------------------------------
MEASURED = {
    # benchmarks/fit_scaling.py, d = 4096 and 8192, N = 20000, one layer: CPU seconds of the
    # statistics pass per FLOP of its products (4 N d^2: H^T H+ and H^T H-), i.e. about
    # 44 GFLOP per CPU second in float64 and 68 in mixed precision.
    "stats_flop_per_cpu_s_f64": 4 * 20000 * 4096**2 / 30.5,
    "stats_flop_per_cpu_s_mixed": 4 * 20000 * 4096**2 / 19.6,
    # the same runs: wall time of the fit minus the pass (randomized SVDs of Omega+ and Omega-,
    # writing the fit folder), per layer.
    "svd_s_per_layer": {4096: 7.2, 8192: 22.3},
    # peak RSS of a one-layer fit at d = 8192, N = 20000 (2 row partitions): 5103 MB.
    "rss_bytes_d8192_one_layer": 5103e6,
    # a store of the demo model (162 rows x 30 layers x d = 576, 3 roles, float32, zstd):
    # 33,510,050 bytes on disk for 33,592,320 raw: compression saves nothing on activations.
    "store_bytes_per_value": 33_510_050 / (162 * 30 * 576 * 3),
    # benchmarks/collect_throughput.py, demo model (135M parameters), CPU: 2 actors of one
    # thread each, 113 tokens/s together.
    "cpu_actor_tokens_s_135m": 113 / 2,
}

# --- assumed (GPU figures: not measured here) -------------------------------------------------
ASSUMED = {
    # tokens a demonstration costs in collection: prompt + positive and prompt + negative
    # forward passes (about 2 x 75 tokens for TruthfulQA-style data; the neutral state reuses
    # the prompt in `neutral: prompt` mode).
    "tokens_per_demo": 150,
    # model FLOPs utilisation of batched bf16 forward passes on an H100 (989 TFLOP/s dense).
    "gpu_bf16_flop_s": 0.25 * 989e12,
    # float64 GEMM on an H100 (67 TFLOP/s FP64 tensor cores), half of it reached.
    "gpu_f64_flop_s": 0.5 * 67e12,
    # reading the store from object storage, per fitting node.
    "store_read_bytes_s": 1.0e9,
    # GPU memory per device (H100 80 GB); a model in bf16 needs 2 bytes per parameter + 20%.
    "gpu_memory_bytes": 80e9,
}


@dataclass(frozen=True)
class Run:
    name: str
    params: float
    d: int
    layers: int
    n: int


RUNS = (
    Run("LLaMA-2-7B, N = 2000 (the paper)", 7e9, 4096, 32, 2000),
    Run("70B, N = 20000", 70e9, 8192, 80, 20000),
    Run("7B, N = 100000", 7e9, 4096, 32, 100_000),
)


def gpus_per_actor(run: Run) -> int:
    """Devices one collector needs to hold the model in bf16 (tensor or pipeline parallel)."""
    need = 2 * run.params * 1.2
    return max(1, -(-int(need) // int(ASSUMED["gpu_memory_bytes"])))


def costs(run: Run, gpus: int) -> dict[str, float]:
    """Seconds per stage on ``gpus`` devices, bytes of the store, and fit memory per layer."""
    tokens = run.n * ASSUMED["tokens_per_demo"]
    actors = max(1, gpus // gpus_per_actor(run))
    collect_s = (
        tokens * 2 * run.params / (actors * gpus_per_actor(run) * ASSUMED["gpu_bf16_flop_s"])
    )
    store_bytes = run.n * run.layers * run.d * 3 * MEASURED["store_bytes_per_value"]
    stats_flop = 4 * run.n * run.d**2 * run.layers
    layer_read_s = store_bytes / run.layers / ASSUMED["store_read_bytes_s"]
    # The device pass runs on one device (fit.device), layer after layer; each layer is bound by
    # reading its rows or by its products, whichever is slower.
    layer_gpu_s = max(layer_read_s, 4 * run.n * run.d**2 / ASSUMED["gpu_f64_flop_s"])
    fit_gpu_s = run.layers * layer_gpu_s
    svd = MEASURED["svd_s_per_layer"][run.d]
    return {
        "gpus_per_actor": gpus_per_actor(run),
        "actors": actors,
        "tokens": tokens,
        "collect_s": collect_s,
        "store_bytes": store_bytes,
        "stats_cpu_s_f64": stats_flop / MEASURED["stats_flop_per_cpu_s_f64"],
        "stats_cpu_s_mixed": stats_flop / MEASURED["stats_flop_per_cpu_s_mixed"],
        "svd_cpu_s": svd * run.layers,
        "fit_gpu_s": fit_gpu_s,
        "layer_result_bytes": 16 * run.d**2 if run.n >= run.d else 24 * run.n * run.d,
        "partition_bytes": 24 * run.d**2,
    }


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--cores", type=int, default=64, help="CPU cores of a fitting cluster")
    args = parser.parse_args()
    print("| run | store | fit statistics, CPU (f64 / mixed) | SVDs, CPU | fit memory per layer |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for run in RUNS:
        c = costs(run, 1)
        print(
            f"| {run.name} | {c['store_bytes'] / GIB:.1f} GiB | "
            f"{_duration(c['stats_cpu_s_f64'])} / {_duration(c['stats_cpu_s_mixed'])} "
            f"CPU time | {_duration(c['svd_cpu_s'])} CPU time | "
            f"{c['layer_result_bytes'] / GIB:.2f} GiB + {c['partition_bytes'] / GIB:.2f} GiB "
            "per running partition |"
        )
    print()
    header = " | ".join(f"collect, k = {k}" for k in args.gpus)
    print(
        f"| run | GPUs per collector | {header} | fit, 1 GPU (pass) | fit, {args.cores} CPU cores "
        "(pass f64 + SVDs) |"
    )
    print("| --- | ---: | " + " | ".join("---:" for _ in args.gpus) + " | ---: | ---: |")
    for run in RUNS:
        cells = []
        for k in args.gpus:
            c = costs(run, k)
            needed = int(c["gpus_per_actor"])
            cells.append(f"needs {needed}" if k < needed else _duration(c["collect_s"]))
        c = costs(run, 1)
        cpu = (c["stats_cpu_s_f64"] + c["svd_cpu_s"]) / args.cores
        print(
            f"| {run.name} | {gpus_per_actor(run)} | " + " | ".join(cells) + " | "
            f"{_duration(c['fit_gpu_s'])} | {_duration(cpu)} |"
        )


if __name__ == "__main__":
    main()
