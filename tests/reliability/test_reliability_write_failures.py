"""Write failures during store writes, fit output and artifact publish; processes killed mid-write.

For every fault: the error is clear (one line, exit 2, on the command line), no partial version
or shard becomes visible, nothing that was there before is lost, and a retry succeeds.

Three kinds of fault, from most to least real:

- Real disk full and real read-only mounts (a small tmpfs and a read-only bind mount in a private
  mount namespace, ``unshare``). Tests run as root here, where permission bits are not enforced,
  so a ``chmod 0o555`` folder would prove nothing; a read-only mount is refused even to root.
  Skipped where the sandbox cannot create a mount namespace.
- Real path failures without privileges: a regular file where a folder must be (``ENOTDIR``).
- A failure at each exact step of the publish protocol (``ENOSPC`` raised at the storage layer's
  write, exclusive-create and move): a real disk cannot be made to fill at each chosen step
  deterministically, so this one boundary is simulated (the marker step is also done for real
  above).
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_outcome import is_log_or_progress, refusal_problems, run_cli
from reliability_workspace import shard_payload, store_spec, write_store
from synthetic_fit import write_synthetic_fit
from tree_snapshot import changes, tree_digest

from sea_dist.errors import StoreError
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.storage import Storage
from sea_dist.store import ActivationStore

pytestmark = pytest.mark.fault
HERE = Path(__file__).resolve().parent


# -- real disk full and read-only mounts ----------------------------------------------------------


def _namespace_command() -> list[str] | None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    for flags in (["-rm"], ["-m"]):
        command = ["unshare", *flags, "--propagation", "private"]
        probe = command + [
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
            "mount -t tmpfs -o size=64k tmpfs /tmp",
        ]
        if subprocess.run(probe, capture_output=True, check=False, timeout=30).returncode == 0:
            return command
    return None


@pytest.fixture(scope="module")
def mounted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every mount scenario once in a private mount namespace; their observations."""
    command = _namespace_command()
    if command is None:
        pytest.skip("no private mount namespace here (unshare/mount unavailable or not permitted)")
    work = tmp_path_factory.mktemp("mounts")
    result = subprocess.run(
        [*command, sys.executable, str(HERE / "mount_faults_child.py"), str(work)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    observed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    for name, value in observed.items():
        assert "crashed" not in value, f"{name}: {value.get('crashed')}"
    marker = observed["marker-disk-full"]  # setup of the marker test: the disk must fill there
    assert marker["reached_marker"] and "No space left" in (marker["error"] or ""), marker
    return observed


def _one_line_exit_2(outcome: dict[str, Any], expect: str) -> None:
    assert outcome["escaped"] is None, outcome["escaped"]
    assert outcome["code"] == 2
    text = outcome["text"].splitlines()
    lines = [ln for ln in text if ln.strip() and not is_log_or_progress(ln)]
    assert len(lines) == 1 and expect in lines[0], lines


def _all_load(view: dict[str, Any]) -> None:
    assert set(view["loads"].values()) == {"ok"}, view["loads"]
    assert view["staging"] == []


@pytest.mark.integration
def test_publish_on_a_full_disk(mounted: dict[str, Any]) -> None:
    seen = mounted["publish-disk-full"]
    _one_line_exit_2(seen["cli"], "No space left on device")
    assert seen["after"] == seen["before"]  # nothing new visible, nothing lost
    _all_load(seen["after"])
    assert seen["retry_version"] == 2 and seen["final"]["latest"] == 2
    _all_load(seen["final"])


@pytest.mark.integration
def test_disk_full_at_the_completion_marker(mounted: dict[str, Any]) -> None:
    seen = mounted["marker-disk-full"]
    assert seen["after"]["versions"] == [1] and seen["after"]["latest"] == 1
    _all_load(seen["after"])


@pytest.mark.integration
@pytest.mark.parametrize("scenario", ["store-disk-full", "store-read-only"])
def test_store_write_failure_then_resume(mounted: dict[str, Any], scenario: str) -> None:
    seen = mounted[scenario]
    assert len(seen["errors"]) == 3  # every shard write refused with a one-line StoreError
    assert seen["pending_after_fault"] == [1, 2, 3]  # no marker without its data
    assert seen["redone"] == [1, 2, 3] and seen["complete"]
    assert seen["identical"]  # byte-identical to an uninterrupted store


@pytest.mark.integration
def test_publish_and_alias_on_a_read_only_registry(mounted: dict[str, Any]) -> None:
    seen = mounted["registry-read-only"]
    _one_line_exit_2(seen["cli"], "Read-only file system")
    _one_line_exit_2(seen["alias"], "Read-only file system")
    assert seen["queries"]["code"] == 0  # reads keep working
    assert seen["changes"] == []
    assert seen["after"]["versions"] == [1]
    assert seen["retry_version"] == 2
    _all_load(seen["final"])


@pytest.mark.integration
def test_fit_on_a_full_disk_leaves_nothing(mounted: dict[str, Any]) -> None:
    seen = mounted["fit-disk-full"]
    assert seen["leftovers"] == []  # no half-written fit folder or temp folder
    assert seen["retry"] == 0 and seen["written"] == ["fit.json", "projections.safetensors"]


@pytest.mark.integration
def test_fit_on_a_full_disk_is_one_line(mounted: dict[str, Any]) -> None:
    _one_line_exit_2(mounted["fit-disk-full"]["cli"], "No space left on device")


# -- a regular file where a folder must be --------------------------------------------------------


def test_publish_below_a_file_then_retry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fit = write_synthetic_fit(tmp_path / "fit")
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    before = tree_digest(tmp_path)
    url = str(blocker / "registry")
    outcome = run_cli(["publish", str(fit), "--name=art", f"--registry={url}"], capsys)
    assert refusal_problems(outcome, "Not a directory") == []
    assert changes(before, tree_digest(tmp_path)) == []
    blocker.unlink()
    blocker.mkdir()
    assert Registry(url).publish(fit, "art").version == 1
    assert Registry(url).load("art@latest").manifest.version == 1


def test_store_below_a_file_then_retry(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    before = tree_digest(tmp_path)
    url = str(blocker / "store.zarr")
    spec = store_spec()
    expected = "expected a writable location, found NotADirectoryError"
    with pytest.raises(StoreError, match=expected) as info:
        ActivationStore.create(url, spec)
    assert url in str(info.value)
    assert changes(before, tree_digest(tmp_path)) == []
    blocker.unlink()
    blocker.mkdir()
    assert write_store(url, spec, [0, 1]).is_complete


def test_fit_output_below_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(tmp_path / "store.zarr")
    write_store(url, store_spec(), [0, 1])
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    outcome = run_cli(["fit", url, f"--out={blocker / 'fit'}", "--svd=exact"], capsys)
    assert refusal_problems(outcome, "blocker") == []


# -- a failure at each step of the publish protocol ------------------------------------------------

STEPS = (
    "write staged projections",
    "write staged manifest",
    "claim the version",
    "move the projections",
    "write the final manifest",
    "write the completion marker",
)


@pytest.fixture
def fail_at(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``fail_at(n)``: the n-th storage mutation (1-based) raises ENOSPC before writing anything."""

    def arm(step: int) -> None:
        calls = {"n": 0}
        for method in ("write_bytes", "create_exclusive", "move"):
            original = getattr(Storage, method)

            def wrapped(self: Storage, *args: Any, _original: Any = original) -> Any:
                calls["n"] += 1
                if calls["n"] == step:
                    raise OSError(errno.ENOSPC, "No space left on device (injected)")
                return _original(self, *args)

            monkeypatch.setattr(Storage, method, wrapped)

    return arm


@pytest.mark.parametrize("step", range(1, len(STEPS) + 1), ids=[s.replace(" ", "-") for s in STEPS])
def test_publish_fails_at_each_step_then_retry(
    step: int, tmp_path: Path, fail_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(str(tmp_path / "registry"))
    registry.publish(write_synthetic_fit(tmp_path / "fit1", seed=1), "art")
    rows = registry.versions("art")
    fit = write_synthetic_fit(tmp_path / "fit2", seed=2)
    fail_at(step)
    with pytest.raises(OSError, match="No space left"):
        registry.publish(fit, "art")
    monkeypatch.undo()
    assert registry.complete_versions("art") == [1]  # the partial version stays invisible
    assert registry.resolve("art@latest").version == 1
    assert registry.versions("art") == rows
    assert registry.storage.list_dir("art", "staging") == []
    retry = registry.publish(fit, "art")
    claimed = sorted(int(p.stem) for p in (tmp_path / "registry" / "art" / "claims").iterdir())
    assert retry.version == claimed[-1]  # a number claimed by the failed try is skipped, not reused
    for version in registry.complete_versions("art"):
        assert registry.load(f"art@{version}").manifest.version == version


def test_publish_failure_on_the_command_line(
    tmp_path: Path, fail_at: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fit = write_synthetic_fit(tmp_path / "fit")
    registry = tmp_path / "registry"
    Registry(str(registry)).publish(write_synthetic_fit(tmp_path / "fit0", seed=9), "art")
    before = tree_digest(registry)
    fail_at(1)
    outcome = run_cli(["publish", str(fit), "--name=art", f"--registry={registry}"], capsys)
    assert refusal_problems(outcome, "No space left") == []
    assert changes(before, tree_digest(registry)) == []


# -- a writer process killed mid-shard, then resumed -----------------------------------------------


def _kill_mid_shard(url: str, die_in: int, shards: list[int]) -> None:
    result = subprocess.run(
        [sys.executable, str(HERE / "store_writer_child.py"), url, str(die_in)]
        + [str(s) for s in shards],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-2000:]  # os._exit(1) from the fault switch


def _same_data(a: ActivationStore, b: ActivationStore) -> bool:
    names = ("neutral", "positive", "negative", "row_ids", "generated", "n_tokens", "shard_done")
    return all(np.array_equal(a.read(name), b.read(name)) for name in names)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("done_first", "die_in"),
    [([], 1), ([0, 2], 1), ([0, 1, 2], 3)],
    ids=["collector-killed-in-shard-1", "killed-after-other-shards", "driver-killed-in-last"],
)
def test_writer_killed_mid_shard_then_resume(
    done_first: list[int], die_in: int, tmp_path: Path
) -> None:
    spec = store_spec(n_rows=16, rows_per_shard=4)
    url = str(tmp_path / "store.zarr")
    ActivationStore.create(url, spec)
    _kill_mid_shard(url, die_in, [*done_first, die_in])

    resumed = ActivationStore.create(url, spec)  # what a restarted run does
    expected_pending = [s for s in range(spec.n_shards) if s not in done_first]
    assert resumed.pending_shards() == expected_pending  # only unfinished shards are redone
    for shard in resumed.pending_shards():
        resumed.write_shard(shard, *shard_payload(spec, shard))
    reference = write_store(str(tmp_path / "reference.zarr"), spec, list(range(spec.n_shards)))
    assert resumed.is_complete and _same_data(resumed, reference)
