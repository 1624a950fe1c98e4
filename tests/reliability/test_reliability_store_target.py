"""A store location that holds anything but a store is never cleared, with or without --overwrite.

Round two found ``mkdir D; echo x > D/a.txt; sea-dist collect CONFIG --store D`` deleting
``a.txt`` and exiting 0: the store was created with ``zarr.open_group(mode="w")``, which empties
the folder first, because D was "not an existing store". Now
:func:`~sea_dist.store.target.check_store_target` runs before the cluster starts (``collect``,
``run``) and again in :meth:`ActivationStore.create`: a file, a folder of other files, or a Zarr
node that is not a sea-dist store is refused; ``--overwrite`` replaces only a store, and only a
store folder that holds nothing else. Every case hashes the location before and after.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from cli_outcome import refusal_problems, run_cli
from reliability_workspace import store_spec, write_store
from tree_snapshot import changes, tree_digest

from sea_dist.errors import StoreError
from sea_dist.store import ActivationStore


def _folder_with_a_file(root: Path) -> Path:
    target = root / "D"
    target.mkdir()
    (target / "a.txt").write_text("x\n")
    return target


def _file(root: Path) -> Path:
    target = root / "notes.txt"
    target.write_text("my notes\n")
    return target


def _hidden_file_only(root: Path) -> Path:
    target = root / "D"
    target.mkdir()
    (target / ".keep").write_bytes(b"")
    return target


def _nested_data(root: Path) -> Path:
    target = root / "D"
    (target / "results" / "run1").mkdir(parents=True)
    (target / "results" / "run1" / "table.csv").write_text("a,b\n1,2\n")
    return target


def _foreign_zarr_group(root: Path) -> Path:
    target = root / "D"
    group = zarr.open_group(str(target), mode="w")
    group.attrs["project"] = "someone else's data"
    group.create_array("values", shape=(4,), dtype="float32")[:] = np.arange(4)
    return target


def _zarr_array(root: Path) -> Path:
    target = root / "D"
    zarr.create_array(str(target), shape=(3,), dtype="int64")[:] = [1, 2, 3]
    return target


def _store_with_notes(root: Path) -> Path:
    target = root / "D"
    write_store(str(target), store_spec(), [0])
    (target / "notes.txt").write_text("why this run matters\n")
    return target


def _store_with_backup_folder(root: Path) -> Path:
    target = root / "D"
    write_store(str(target), store_spec(), [0, 1])
    (target / "backup").mkdir()
    (target / "backup" / "old.npy").write_bytes(b"\x93NUMPY")
    return target


NOT_A_STORE = {  # refused with and without --overwrite
    "folder-with-a-file": (_folder_with_a_file, "not a store"),
    "a-file": (_file, "found a file"),
    "hidden-file-only": (_hidden_file_only, "not a store"),
    "nested-data": (_nested_data, "not a store"),
    "foreign-zarr-group": (_foreign_zarr_group, "not a sea-dist activation store"),
    "zarr-array": (_zarr_array, "not a sea-dist activation store"),
}
STORE_PLUS_OTHER = {  # a store that also holds other things: --overwrite is refused
    "store-with-notes": _store_with_notes,
    "store-with-backup-folder": _store_with_backup_folder,
}


@pytest.mark.bad_input
@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("case", list(NOT_A_STORE))
def test_store_location_is_refused(case: str, overwrite: bool, tmp_path: Path) -> None:
    make, expect = NOT_A_STORE[case]
    target = make(tmp_path)
    before = tree_digest(tmp_path)
    with pytest.raises(StoreError, match=expect) as caught:
        ActivationStore.create(str(target), store_spec(d_model=16), overwrite=overwrite)
    assert "nothing was deleted" in str(caught.value) and "\n" not in str(caught.value)
    assert changes(before, tree_digest(tmp_path)) == []


@pytest.mark.bad_input
@pytest.mark.parametrize("case", list(STORE_PLUS_OTHER))
def test_overwrite_refuses_a_store_holding_other_entries(case: str, tmp_path: Path) -> None:
    target = STORE_PLUS_OTHER[case](tmp_path)
    before = tree_digest(tmp_path)
    with pytest.raises(StoreError, match="other entries .* which --overwrite would delete"):
        ActivationStore.create(str(target), store_spec(d_model=16), overwrite=True)
    assert changes(before, tree_digest(tmp_path)) == []


def test_non_store_folder_over_fsspec_is_refused() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/reliability-target/keep.txt", b"keep me")
    try:
        with pytest.raises(StoreError, match="not a store"):
            ActivationStore.create("memory://reliability-target", store_spec(), overwrite=True)
        assert fs.cat("/reliability-target/keep.txt") == b"keep me"
    finally:
        fs.rm("/reliability-target", recursive=True)


def test_a_damaged_store_is_named_not_cleared(tmp_path: Path) -> None:
    target = tmp_path / "D"
    write_store(str(target), store_spec(), [0])
    (target / "zarr.json").write_bytes(b'{"zarr_format": 3, "node_')
    before = tree_digest(tmp_path)
    with pytest.raises(StoreError, match="damaged"):
        ActivationStore.create(str(target), store_spec())
    assert changes(before, tree_digest(tmp_path)) == []
    # --overwrite may replace it: everything in it is one of the store's own Zarr nodes.
    store = ActivationStore.create(str(target), store_spec(), overwrite=True)
    assert store.progress() == (0, 2)


# -- what still works -----------------------------------------------------------------------------


def test_empty_folder_and_new_location_become_stores(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for url in (tmp_path / "empty", tmp_path / "new" / "store.zarr"):
        assert ActivationStore.create(str(url), store_spec()).progress() == (0, 2)


def test_overwrite_replaces_a_clean_store_and_resume_keeps_shards(tmp_path: Path) -> None:
    target = tmp_path / "D"
    write_store(str(target), store_spec(), [0])
    resumed = ActivationStore.create(str(target), store_spec())
    assert resumed.done_shards() == {0}
    replaced = ActivationStore.create(str(target), store_spec(d_model=16), overwrite=True)
    assert replaced.spec.d_model == 16 and replaced.done_shards() == set()


# -- through the commands: refused before the cluster starts --------------------------------------


def _config(tmp_path: Path, store: Path, overwrite: bool = False) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        "model:\n  id: tiny-model-never-loaded\n"
        "collect:\n  neutral: prompt\n"
        f"store:\n  url: {store}\n  overwrite: {json.dumps(overwrite)}\n"
        f"fit:\n  out: {tmp_path / 'fit'}\n"
        f"publish:\n  registry: {tmp_path / 'registry'}\n"
        f"evaluate:\n  out: {tmp_path / 'eval'}\n",
        encoding="utf-8",
    )
    return str(path)


COMMANDS = {
    "collect": lambda cfg, d: ["collect", cfg, "--store", d, "--limit", "2"],
    "collect-overwrite": lambda cfg, d: ["collect", cfg, "--store", d, "--overwrite"],
    "run": lambda cfg, d: ["run", cfg, "--no-progress"],
    "run-overwrite-store": lambda cfg, d: ["run", cfg, "--overwrite-store"],
}


@pytest.mark.bad_input
@pytest.mark.parametrize("config_overwrite", [False, True], ids=["", "store.overwrite"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_commands_refuse_a_non_store_folder(
    command: str,
    config_overwrite: bool,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    monkeypatch.chdir(tmp_path)
    target = _folder_with_a_file(tmp_path)
    config = _config(tmp_path, target, overwrite=config_overwrite)
    ray_was_running = ray.is_initialized()
    before = tree_digest(tmp_path)
    outcome = run_cli(COMMANDS[command](config, str(target)), capsys)
    assert refusal_problems(outcome, "not a store") == []
    assert changes(before, tree_digest(tmp_path)) == []  # no store, fit or registry either
    assert ray.is_initialized() == ray_was_running  # refused before any cluster started


def test_collect_function_refuses_before_the_cluster_starts(tmp_path: Path) -> None:
    import ray

    from sea_dist.collect.driver import collect
    from sea_dist.config import load_config

    target = _folder_with_a_file(tmp_path)
    config = load_config(_config(tmp_path, target))
    ray_was_running = ray.is_initialized()
    before = tree_digest(tmp_path)
    with pytest.raises(StoreError, match="not a store"):
        collect(config, overwrite=True, progress=False)
    assert changes(before, tree_digest(tmp_path)) == []
    assert ray.is_initialized() == ray_was_running
