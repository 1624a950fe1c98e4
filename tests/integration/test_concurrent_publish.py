"""16 real processes publish to one name at once: distinct versions 1..16, none lost, all valid.

A reader polls the registry while they run and must only ever see complete, verifiable versions.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from synthetic_fit import write_synthetic_fit

from sea_dist.format.tensors import sha256_hex
from sea_dist.registry.filesystem import Registry

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PUBLISHERS = 16


def _publish(registry_url: str, fit_dir: str, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=240)  # every process is up and imported: now the claims really collide
    resolved = Registry(registry_url).publish(fit_dir, "race")
    results.put((fit_dir, resolved.version, resolved.sha256))


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path / "registry"))
    fits = [str(write_synthetic_fit(tmp_path / f"fit{i}", seed=i)) for i in range(PUBLISHERS)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PUBLISHERS)
    queue = context.Queue()
    processes = [
        context.Process(target=_publish, args=(registry.url, fit, barrier, queue)) for fit in fits
    ]
    for process in processes:
        process.start()
    seen_by_reader: set[int] = set()
    results: list[tuple[str, int, str]] = []
    deadline = time.monotonic() + 300
    while len(results) < PUBLISHERS and time.monotonic() < deadline:
        for version in registry.complete_versions("race"):
            if version not in seen_by_reader:
                registry.load(f"race@{version}")  # a visible version is always whole
                seen_by_reader.add(version)
        try:
            results.append(queue.get(timeout=0.02))
        except Empty:
            if not any(p.is_alive() for p in processes) and queue.empty():
                break
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * PUBLISHERS

    versions = sorted(version for _, version, _ in results)
    assert versions == list(range(1, PUBLISHERS + 1))
    for fit_dir, version, sha in results:
        assert sha == sha256_hex((Path(fit_dir) / "projections.safetensors").read_bytes())
        artifact = registry.load(f"race@{version}")
        assert artifact.manifest.sha256 == sha and artifact.manifest.version == version
    rows = registry.versions("race")
    assert [r["version"] for r in rows] == versions
    assert {r["sha256"] for r in rows} == {sha for _, _, sha in results}
    root = Path(registry.storage.root) / "race"
    assert sorted(p.name for p in (root / "claims").iterdir()) == sorted(
        f"{v}.json" for v in versions
    )
    assert list((root / "staging").iterdir()) == []
