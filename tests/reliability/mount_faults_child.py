"""Child process of the real disk-full and read-only tests; run inside a private mount namespace.

Usage: ``unshare -rm --propagation private python mount_faults_child.py WORKDIR``. Mounts a small
tmpfs (a real disk that fills up) and a read-only bind mount (a real ``EROFS``) below WORKDIR,
drives the registry, the activation store and the CLI into them, and prints one JSON object per
scenario with what it observed. The mounts vanish with the namespace when the process exits.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (synthetic_fit)

import numpy as np  # noqa: E402
from reliability_workspace import shard_payload, store_spec, write_store  # noqa: E402
from synthetic_fit import write_synthetic_fit  # noqa: E402
from tree_snapshot import changes, tree_digest  # noqa: E402

from sea_dist.cli import main as cli_main  # noqa: E402
from sea_dist.errors import StoreError  # noqa: E402
from sea_dist.registry.filesystem import Registry  # noqa: E402
from sea_dist.registry.fitdir import build_manifest, read_fit_output  # noqa: E402
from sea_dist.store import ActivationStore  # noqa: E402

PAGE = 4096


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        mount_cleanup(path)


def mount_cleanup(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def free_pages(path: Path) -> int:
    return os.statvfs(path).f_bavail


def fill(path: Path, leave_pages: int) -> Path:
    """A filler file that leaves exactly ``leave_pages`` free pages on the tmpfs at ``path``."""
    filler = path / "filler"
    filler.write_bytes(b"\0" * ((free_pages(path) - leave_pages) * PAGE))
    assert free_pages(path) == leave_pages, (free_pages(path), leave_pages)
    return filler


def cli(argv: list[str]) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    escaped = None
    code: int | str | None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as exit_:
            code = exit_.code
        except Exception as error:  # noqa: BLE001 - reported to the parent as a traceback
            code, escaped = None, f"{type(error).__name__}: {error}"
    return {"code": code, "text": (out.getvalue() + err.getvalue()).strip(), "escaped": escaped}


def visible(registry: Registry, name: str) -> dict[str, Any]:
    """What a reader sees: complete versions, whether each loads, what latest resolves to."""
    versions = registry.complete_versions(name)
    loads = {}
    for version in versions:
        try:
            registry.load(f"{name}@{version}")
            loads[version] = "ok"
        except Exception as error:  # noqa: BLE001 - the parent asserts on it
            loads[version] = f"{type(error).__name__}: {error}"
    try:
        latest: Any = registry.resolve(f"{name}@latest").version
    except Exception as error:  # noqa: BLE001
        latest = f"{type(error).__name__}: {error}"
    staging = registry.storage.list_dir(name, "staging")
    return {"versions": versions, "loads": loads, "latest": latest, "staging": staging}


def big_fit(work: Path) -> Path:
    return write_synthetic_fit(work / "big-fit", d_model=256, k_pos=40, k_neg=40, seed=7)


def scenario_publish_disk_full(work: Path) -> dict[str, Any]:
    fit = big_fit(work)
    with tmpfs(work / "full", "1m") as disk:
        registry = Registry(str(disk / "registry"))
        registry.publish(write_synthetic_fit(work / "small-fit", seed=1), "art")
        before = visible(registry, "art")
        filler = fill(disk, 8)  # far less than the ~170 KB artifact
        failed = cli(["publish", str(fit), "--name=art", f"--registry={disk / 'registry'}"])
        after = visible(registry, "art")
        filler.unlink()
        retry = registry.publish(fit, "art")
        return {
            "cli": failed,
            "before": before,
            "after": after,
            "retry_version": retry.version,
            "final": visible(registry, "art"),
        }


def scenario_marker_disk_full(work: Path) -> dict[str, Any]:
    """The disk fills exactly when the completion marker is written (the last write)."""
    fit = big_fit(work)
    staged = build_manifest(read_fit_output(str(fit)), "art")
    pages = lambda n: -(-n // PAGE)  # noqa: E731
    projections = staged.size_bytes
    manifest = len(staged.to_json())
    # staged projections (moved, not copied), staged manifest, claim, final manifest
    needed = pages(projections) + pages(manifest) + 1 + pages(manifest + 16)
    with tmpfs(work / "marker", "1m") as disk:
        registry = Registry(str(disk / "registry"))
        registry.publish(write_synthetic_fit(work / "small-fit2", seed=2), "art")
        registry.versions("art")
        filler = fill(disk, needed)
        error = None
        try:
            registry.publish(fit, "art")
        except OSError as raised:
            error = f"{type(raised).__name__}: {raised}"
        root = disk / "registry" / "art"
        reached = (root / "versions" / "2" / "manifest.json").is_file()
        after = visible(registry, "art")
        filler.unlink()
        retry = registry.publish(fit, "art")
        return {
            "error": error,
            "reached_marker": reached,
            "after": after,
            "retry_version": retry.version,
        }


def _store_scenario(disk: Path, break_it: Callable[[], None], heal: Callable[[], None]) -> Any:
    spec = store_spec(n_rows=64, rows_per_shard=16, d_model=64)
    url = str(disk / "store.zarr")
    store = write_store(url, spec, [0])
    break_it()
    errors = []
    for shard in (1, 2, 3):
        try:
            store.write_shard(shard, *shard_payload(spec, shard))
        except StoreError as error:
            errors.append(f"{type(error).__name__}: {error}")
    pending_after_fault = ActivationStore.open(url).pending_shards()
    heal()
    resumed = ActivationStore.create(url, spec)
    redone = resumed.pending_shards()
    for shard in redone:
        resumed.write_shard(shard, *shard_payload(spec, shard))
    reference = write_store(str(disk.parent / "reference.zarr"), spec, [0, 1, 2, 3])
    identical = all(
        np.array_equal(resumed.read(name), reference.read(name))
        for name in ("neutral", "positive", "negative", "row_ids", "generated", "n_tokens")
    )
    return {
        "errors": errors,
        "pending_after_fault": pending_after_fault,
        "redone": redone,
        "complete": resumed.is_complete,
        "identical": identical,
    }


def scenario_store_disk_full(work: Path) -> dict[str, Any]:
    with tmpfs(work / "store-full", "1m") as disk:
        holder: dict[str, Path] = {}

        def break_it() -> None:
            holder["filler"] = fill(disk, 2)

        return _store_scenario(disk, break_it, lambda: holder["filler"].unlink())


def _read_only(path: Path) -> None:
    mount("--bind", str(path), str(path))
    mount("-o", "remount,ro,bind", str(path))


def scenario_store_read_only(work: Path) -> dict[str, Any]:
    disk = work / "store-ro"
    disk.mkdir()
    try:
        return _store_scenario(
            disk, lambda: _read_only(disk), lambda: mount("-o", "remount,rw,bind", str(disk))
        )
    finally:
        mount_cleanup(disk)


def scenario_registry_read_only(work: Path) -> dict[str, Any]:
    folder = work / "ro"
    registry = Registry(str(folder / "registry"))
    registry.publish(write_synthetic_fit(work / "ro-fit1", seed=3), "art")
    registry.versions("art")
    fit = write_synthetic_fit(work / "ro-fit2", seed=4)
    _read_only(folder)
    try:
        before = tree_digest(folder)
        failed = cli(["publish", str(fit), "--name=art", f"--registry={folder / 'registry'}"])
        # an ungated alias: a gated one is refused by the promotion gate before any write
        alias = cli(["registry", "alias", "art@1", "staging", f"--registry={folder / 'registry'}"])
        queries = cli(["registry", "versions", "art", f"--registry={folder / 'registry'}"])
        after = visible(registry, "art")
        diff = changes(before, tree_digest(folder))
        mount("-o", "remount,rw,bind", str(folder))
        retry = registry.publish(fit, "art")
        return {
            "cli": failed,
            "alias": alias,
            "queries": queries,
            "after": after,
            "changes": diff,
            "retry_version": retry.version,
            "final": visible(registry, "art"),
        }
    finally:
        mount_cleanup(folder)


def scenario_fit_disk_full(work: Path) -> dict[str, Any]:
    spec = store_spec(n_rows=64, rows_per_shard=16, d_model=64)
    url = str(work / "store.zarr")
    write_store(url, spec, [0, 1, 2, 3])
    with tmpfs(work / "fit-full", "1m") as disk:
        filler = fill(disk, 2)
        out = disk / "fit"
        failed = cli(["fit", url, f"--out={out}", "--svd=exact", "--scheduler=synchronous"])
        leftovers = sorted(p.name for p in disk.iterdir() if p.name != "filler")
        filler.unlink()
        retry = cli(["fit", url, f"--out={out}", "--svd=exact", "--scheduler=synchronous"])
        return {
            "cli": failed,
            "leftovers": leftovers,
            "retry": retry["code"],
            "written": sorted(p.name for p in out.iterdir()) if out.is_dir() else [],
        }


SCENARIOS = {
    "publish-disk-full": scenario_publish_disk_full,
    "marker-disk-full": scenario_marker_disk_full,
    "store-disk-full": scenario_store_disk_full,
    "store-read-only": scenario_store_read_only,
    "registry-read-only": scenario_registry_read_only,
    "fit-disk-full": scenario_fit_disk_full,
}

if __name__ == "__main__":
    work = Path(sys.argv[1])
    results = {}
    for name, scenario in SCENARIOS.items():
        folder = work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            results[name] = scenario(folder)
        except Exception:  # noqa: BLE001 - reported; the parent test fails on it
            import traceback

            results[name] = {"crashed": traceback.format_exc()}
    print(json.dumps(results))
