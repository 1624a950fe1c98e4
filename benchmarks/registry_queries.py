"""Registry query latency with 1,000 versions, through the Python API and the HTTP API.

Claim: resolving a reference takes under 50 ms and listing 1,000 versions under 500 ms, on a local
registry, through both the Python API and the read-only HTTP API (median of repeated calls).
Baseline for the listing: rebuilding the rows from the 1,000 manifests (what the Parquet index
saves on every listing).

    python benchmarks/registry_queries.py [--versions 1000] [--repeats 25] [--keep DIR]

Ends with ``RESULT list_ms=<x> resolve_ms=<y>``: the slower of the Python and HTTP medians for
listing all versions, and the slowest median over the resolve kinds (latest, alias, number,
sha256 prefix) and both paths.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sea_dist.registry.client import HttpRegistry
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.index import index_rows
from sea_dist.serve.server import BackgroundServer

# The synthetic fits are test fixtures (tests/synthetic_fit.py), not library code.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic_fit import write_synthetic_fit  # noqa: E402


def median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm: first call may refresh the index
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def build(registry: Registry, work: Path, versions: int) -> float:
    """Publish ``versions`` versions of ``bench`` (+ 3 small names); returns median publish ms."""
    timings = []
    for i in range(versions):
        fit = write_synthetic_fit(
            work / "fit", seed=i, model_id=f"model-{i % 3}", demonstrations=f"data-{i % 5}"
        )
        start = time.perf_counter()
        registry.publish(fit, "bench", created_at=f"2026-01-01T00:00:{i % 60:02d}.{i:06d}+00:00")
        timings.append((time.perf_counter() - start) * 1000)
    for n in range(3):
        registry.publish(write_synthetic_fit(work / "fit", seed=10_000 + n), f"other-{n}")
    registry.set_alias("bench", "production", versions // 2)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--keep", default=None, help="build the registry here and keep it")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sea-bench-"))
    try:
        registry = Registry(str(work / "registry"))
        start = time.perf_counter()
        publish_ms = build(registry, work, args.versions)
        build_s = time.perf_counter() - start
        sha = registry.resolve(f"bench@{args.versions // 3}").sha256[:12]
        n = args.versions
        reps = args.repeats

        def no_index() -> None:  # baseline: read every manifest
            index_rows(registry.storage, "bench", registry.complete_versions("bench"), rebuild=True)

        rows: list[tuple[str, float, float | None]] = []
        with BackgroundServer(registry) as server:
            client = HttpRegistry(server.url)
            assert len(client.versions("bench")) == n == len(registry.versions("bench"))
            queries: list[tuple[str, Callable[[Any], Any]]] = [
                ("list names", lambda r: r.names()),
                (f"list {n} versions", lambda r: r.versions("bench")),
                ("list filtered (model_id)", lambda r: r.versions("bench", model_id="model-1")),
                ("resolve name@latest", lambda r: r.resolve("bench@latest")),
                ("resolve name@production", lambda r: r.resolve("bench@production")),
                (f"resolve name@{n // 2}", lambda r: r.resolve(f"bench@{n // 2}")),
                ("resolve sha256:<12 hex>", lambda r: r.resolve(f"sha256:{sha}")),
                ("show manifest", lambda r: r.manifest("bench@latest")),
            ]
            for label, query in queries:
                python_ms = median_ms(lambda q=query: q(registry), reps)  # type: ignore[misc]
                http_ms = median_ms(lambda q=query: q(client), reps)  # type: ignore[misc]
                rows.append((label, python_ms, http_ms))
        baseline_ms = median_ms(no_index, max(3, reps // 5))
        rows.append((f"baseline: rows from {n} manifests", baseline_ms, None))

        print(
            f"registry: {n} versions of one name + 3 names; built in {build_s:.1f} s "
            f"(median publish {publish_ms:.1f} ms); medians of {reps} calls"
        )
        print(f"{'query':<34} {'python ms':>10} {'http ms':>10}")
        for label, local_ms, served_ms in rows:
            http_text = f"{served_ms:10.2f}" if served_ms is not None else f"{'-':>10}"
            print(f"{label:<34} {local_ms:10.2f} {http_text}")
        listing = dict((label, (p, h)) for label, p, h in rows)[f"list {n} versions"]
        print(f"index speed-up on listing (python): {baseline_ms / listing[0]:.1f}x")
        list_ms = max(listing[0], listing[1] or 0.0)
        resolve_ms = max(max(p, h or 0.0) for label, p, h in rows if label.startswith("resolve"))
        print(f"RESULT list_ms={list_ms:.2f} resolve_ms={resolve_ms:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
