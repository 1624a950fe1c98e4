"""The loader works in a serving image: no pyarrow, ray, dask, zarr (or torch unless asked)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sea_dist.registry.filesystem import Registry

SCRIPT = """
import sys

class Block:
    # Any import of these raises, as if they were not installed.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"pyarrow", "ray", "dask", "zarr", "torch", "distributed"}:
            raise ImportError(f"blocked {name}")
        return None

sys.meta_path.insert(0, Block())
from sea_dist.registry import load_artifact

by_ref = load_artifact("lean@latest", registry=sys.argv[1])
by_folder = load_artifact(sys.argv[2])
assert by_ref.manifest.sha256 == by_folder.manifest.sha256
print("OK", by_ref.ref, sorted(by_ref.layers))
"""

FitFactory = Callable[..., Path]


def test_loader_needs_no_heavy_packages(registry: Registry, make_fit: FitFactory) -> None:
    registry.publish(make_fit(layers=(0, 2)), "lean")
    folder = Path(registry.storage.root) / "lean" / "versions" / "1"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, registry.url, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK lean@1 [0, 2]"
