"""Collection on a real local Ray cluster: resume, refusal, actor deaths, driver death.

One cluster (2 CPUs) for the module; a tiny llama saved to a folder; 18 built-in demonstrations
in 6 shards of 3 rows; ``neutral: generate``. Every faulty run must end with a store identical
(bit for bit) to the uninterrupted reference run: same layout (2 collectors, 1 thread each), so
the same batches give the same floats.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sea_dist.collect.actor import ShardResult
from sea_dist.collect.driver import ACTOR_PREFIX, CollectError, collect
from sea_dist.config import SeaConfig, config_from_dict, config_to_dict, with_overrides
from sea_dist.data import load_demonstrations
from sea_dist.errors import ModelError, StoreError
from sea_dist.store import ActivationStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ARRAYS = ("neutral", "positive", "negative", "row_ids", "generated", "n_tokens")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    import ray

    # address="local": a fresh cluster even if another one runs on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> SeaConfig:
    from tiny_models import save_tiny_model

    folder = save_tiny_model("llama", tmp_path_factory.mktemp("model") / "tiny-llama")
    return config_from_dict(
        {
            "model": {"id": str(folder)},
            "data": {"source": "builtin", "limit": 18},
            "collect": {
                "layers": [0, 2],
                "neutral": "generate",
                "max_new_tokens": 3,
                "batch_size": 2,
                "rows_per_shard": 3,
                "num_actors": 2,
                "max_retries": 2,
            },
            "store": {"url": str(tmp_path_factory.mktemp("stores") / "ref.zarr")},
        }
    )


def _at(config: SeaConfig, url: Path, **collect: Any) -> SeaConfig:
    sections: dict[str, dict[str, Any]] = {"store": {"url": str(url)}}
    if collect:
        sections["collect"] = collect
    return with_overrides(config, **sections)


def _read_all(url: str) -> dict[str, np.ndarray]:
    store = ActivationStore.open(url)
    store.require_complete()
    return {name: store.read(name) for name in ARRAYS}


@pytest.fixture(scope="module")
def reference(ray_cluster: str, base_config: SeaConfig) -> dict[str, np.ndarray]:
    summary = collect(base_config, progress=False)
    assert (summary.shards, summary.shards_collected, summary.shards_retried) == (6, 6, 0)
    assert summary.rows == summary.rows_collected == 18
    assert summary.tokens == int(_read_all(summary.store_url)["n_tokens"].sum()) > 0
    assert summary.store_bytes > 0
    return _read_all(summary.store_url)


def _assert_same_store(url: str, reference: dict[str, np.ndarray]) -> None:
    found = _read_all(url)
    for name in ARRAYS:
        np.testing.assert_array_equal(found[name], reference[name], err_msg=name)


def test_reference_store_layout_and_resume(
    base_config: SeaConfig, reference: dict[str, np.ndarray]
) -> None:
    store = ActivationStore.open(base_config.store.url)
    assert reference["positive"].shape == (18, 2, 32)
    assert reference["positive"].dtype == np.float32
    assert np.abs(reference["neutral"]).sum() > 0
    positive: Any = store.group["positive"]
    assert positive.chunks == (3, 1, 32)
    attrs = store.attrs()
    assert attrs["layers"] == [0, 2] and attrs["neutral"] == "generate"
    assert attrs["model_id"] == base_config.model.id and attrs["created_at"]
    demos = load_demonstrations(base_config.data)
    assert list(reference["row_ids"]) == [d.id for d in demos]
    assert any(reference["generated"])

    again = collect(base_config, progress=False)
    assert (again.shards_skipped, again.shards_collected, again.rows_collected) == (6, 0, 0)
    _assert_same_store(base_config.store.url, reference)


def test_incompatible_store_is_refused_and_overwrite_replaces(
    base_config: SeaConfig, reference: dict[str, np.ndarray], tmp_path: Path
) -> None:
    url = tmp_path / "copy.zarr"
    shutil.copytree(base_config.store.url, url)
    other = _at(base_config, url, layers=[1])
    with pytest.raises(StoreError, match="layers: expected \\[1\\].*--overwrite"):
        collect(other, progress=False)
    _assert_same_store(str(url), reference)  # untouched
    summary = collect(other, overwrite=True, progress=False)
    assert summary.shards_collected == 6
    assert ActivationStore.open(str(url)).spec.layers == (1,)


def test_actor_exiting_mid_shard_is_replaced_and_the_shard_retried(
    base_config: SeaConfig,
    reference: dict[str, np.ndarray],
    tmp_path: Path,
) -> None:
    from fault_hooks import exit_in_shard

    config = _at(base_config, tmp_path / "exit.zarr")
    hook = exit_in_shard(2, once_file=str(tmp_path / "fired"))
    summary = collect(config, progress=False, before_write=hook)
    assert (tmp_path / "fired").exists(), "the fault never fired"
    assert summary.shards_retried >= 1 and summary.actors_replaced >= 1
    assert summary.shards_collected == 6
    _assert_same_store(config.store.url, reference)


def test_actor_killed_by_ray_is_replaced(
    base_config: SeaConfig, reference: dict[str, np.ndarray], tmp_path: Path
) -> None:
    import ray
    from ray.util import list_named_actors

    killed: list[str] = []

    def kill_a_collector(result: ShardResult) -> None:
        if killed:
            return
        # Both collectors hold queued shards now (max_in_flight 2), so the killed one dies
        # with work in flight.
        name = sorted(n for n in list_named_actors() if n.startswith(ACTOR_PREFIX))[0]
        ray.kill(ray.get_actor(name), no_restart=True)
        killed.append(name)

    config = _at(base_config, tmp_path / "kill.zarr")
    summary = collect(config, progress=False, on_result=kill_a_collector)
    assert killed
    assert summary.actors_replaced >= 1 and summary.shards_retried >= 1
    _assert_same_store(config.store.url, reference)


def test_shard_that_keeps_failing_stops_the_run(
    ray_cluster: str, base_config: SeaConfig, tmp_path: Path
) -> None:
    from fault_hooks import exit_in_shard

    config = _at(base_config, tmp_path / "poison.zarr", max_retries=1)
    with pytest.raises(CollectError, match="shard 1: expected to succeed within 1 retries"):
        # No once-file: the collector dies in shard 1 on every attempt.
        collect(config, progress=False, before_write=exit_in_shard(1))
    store = ActivationStore.open(config.store.url)
    assert 1 not in store.done_shards()


def test_driver_killed_then_rerun_resumes(
    ray_cluster: str,
    base_config: SeaConfig,
    reference: dict[str, np.ndarray],
    tmp_path: Path,
) -> None:
    url = tmp_path / "driver.zarr"
    # One shard in flight per collector, so at most 2 more finish after the driver dies.
    config = _at(base_config, url, max_in_flight=1)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(config)), encoding="utf-8")
    # The driver dies (os._exit) after 2 completed shards: collect() in a child process whose
    # on_result callback kills it.
    died = subprocess.run(
        [sys.executable, str(HERE / "collect_driver_child.py"), str(path), ray_cluster, "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert died.returncode == 1, died.stdout + died.stderr
    assert "collect finished" not in died.stdout  # it died, it did not finish
    done_before = ActivationStore.open(str(url)).done_shards()
    assert 2 <= len(done_before) < 6

    command = [
        sys.executable,
        str(REPO / "jobs" / "collect.py"),
        "--config",
        str(path),
        "--address",
        ray_cluster,
        "--no-progress",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    result = json.loads(finished.stdout.strip().splitlines()[-1].split(" ", 1)[1])
    assert result["status"] == "ok" and result["store"] == str(url)
    # A collector of the dead driver may still finish its shard while Ray reaps it, so more
    # shards can be done by the time the rerun looks; never fewer, and nothing is redone.
    assert result["shards_skipped"] >= len(done_before)
    assert result["shards_collected"] == 6 - result["shards_skipped"] > 0
    _assert_same_store(str(url), reference)

    cli = [str(Path(sys.executable).parent / "sea-dist"), "collect", str(path)]
    again = subprocess.run(
        cli + ["--address", ray_cluster, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "shards: 0 collected, 6 already done, 0 retried" in again.stdout


def test_bad_model_in_the_actors_is_a_clear_error(
    ray_cluster: str, base_config: SeaConfig, tmp_path: Path
) -> None:
    config = with_overrides(
        _at(base_config, tmp_path / "bad.zarr", num_actors=1),
        model={"id": str(tmp_path / "no-such-model")},
    )
    with pytest.raises(ModelError, match="no-such-model"):
        collect(config, progress=False)
    assert not ActivationStore.exists(str(tmp_path / "bad.zarr"))
