"""sea_dist.edit imports and works in a serving image: no ray, dask, zarr or pyarrow."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from synthetic_projections import write_artifact_folder, write_fit_folder
from tiny_models import build_tiny_model

_BLOCKED = ("ray", "dask", "distributed", "zarr", "pyarrow")

_SCRIPT = textwrap.dedent(
    """
    import sys
    blocked = sys.argv[1].split(",")
    for name in blocked:
        sys.modules[name] = None  # any `import name` now raises ImportError
    import sea_dist.edit
    from sea_dist.edit import apply_edit, load_edit
    for folder in sys.argv[2:]:
        edit = load_edit(folder)
        assert edit.layer_indices, folder
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in blocked and sys.modules[m])
    assert not loaded, loaded
    print("ok", len(edit.layers))
    """
)


def _run(blocked: tuple[str, ...], folders: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, ",".join(blocked), *map(str, folders)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_edit_imports_and_loads_without_ray_dask_zarr(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    fit = write_fit_folder(tmp_path / "fit", model)
    artifact = write_artifact_folder(tmp_path / "artifact", model)
    result = _run(_BLOCKED, [fit, artifact])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok 3"


def test_artifact_folder_loads_without_fsspec(tmp_path: Path) -> None:
    """Without fsspec (no registry client) an artifact folder is still read and verified."""
    model, _ = build_tiny_model("llama")
    artifact = write_artifact_folder(tmp_path / "artifact", model, layers=[1])
    result = _run((*_BLOCKED, "fsspec"), [artifact])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok 1"
