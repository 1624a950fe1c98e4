"""The whole pipeline on object storage: collect into ``s3://``, fit from it, publish to ``s3://``.

A real S3-compatible server (moto, tests/s3_server.py) on 127.0.0.1: no shared filesystem between
the collectors and the fit, no rename, real HTTP. Nothing passes storage options: the standard
AWS environment (``AWS_ENDPOINT_URL`` and credentials), set before the local Ray cluster starts,
configures s3fs in the driver, in the Ray collector actors (which inherit it) and in the
``sea-dist`` subprocesses, as it would on a cluster whose nodes carry it.

Checked against the same pipeline on a local folder store, bit for bit (the fit's projections
file is byte-reproducible): the S3 store's arrays, the fit's and the published projections'
sha256; an interrupted collection and a lost completion marker resume by redoing only the
missing shards; one flipped byte in one chunk object makes the fit refuse with one line naming
the chunk, ``sea-dist store verify`` reports it, and ``--mark-pending`` plus a re-run repairs it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sea_dist.collect.actor import ShardResult
from sea_dist.collect.driver import collect
from sea_dist.config import SeaConfig, config_from_dict, with_overrides
from sea_dist.errors import FitError, StoreError
from sea_dist.fit.pipeline import fit_store
from sea_dist.store import ActivationStore
from sea_dist.store.target import check_store_target

pytestmark = [pytest.mark.integration, pytest.mark.slow]
pytest.importorskip("s3fs")
pytest.importorskip("moto")

from s3_server import make_bucket, s3_env, s3_server  # noqa: E402

BUCKET = "sea-store"
ARRAYS = ("neutral", "positive", "negative", "row_ids", "generated", "n_tokens")
PROJECTIONS = "projections.safetensors"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as endpoint:
        make_bucket(endpoint, BUCKET)
        yield endpoint


@pytest.fixture(scope="module")
def aws_env(s3_endpoint: str) -> Iterator[None]:
    """The standard AWS environment pointing at the server (restored after the module)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in s3_env(s3_endpoint).items():
            patch.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def ray_cluster(aws_env: None) -> Iterator[str]:
    import ray

    # The environment first: the cluster's processes (raylet, collector actors) inherit it.
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
            "model": {"id": str(folder), "device": "cpu", "dtype": "float32"},
            "data": {"source": "builtin", "limit": 16},
            "collect": {
                "layers": [0, 2],
                "neutral": "prompt",
                "batch_size": 4,
                "rows_per_shard": 4,
                "num_actors": 1,
                "max_in_flight": 1,
            },
            "store": {"url": str(tmp_path_factory.mktemp("local") / "store.zarr")},
        }
    )


def _at(config: SeaConfig, url: str) -> SeaConfig:
    return with_overrides(config, store={"url": url})


def _read_all(url: str) -> dict[str, np.ndarray]:
    store = ActivationStore.open(url)
    store.require_complete()
    return {name: store.read(name) for name in ARRAYS}


def _assert_same_store(url: str, reference: dict[str, np.ndarray]) -> None:
    found = _read_all(url)
    for name in ARRAYS:
        np.testing.assert_array_equal(found[name], reference[name], err_msg=name)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fs() -> Any:
    import fsspec

    # A fresh instance (no listing cache shared with Zarr's): it sees what is on the server.
    return fsspec.filesystem("s3", skip_instance_cache=True)


def _cli(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # aws_env set the S3 environment in os.environ; the subprocess inherits it.
    assert os.environ.get("AWS_ENDPOINT_URL"), "the S3 environment must be set"
    done = subprocess.run(
        [sys.executable, "-m", "sea_dist.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def reference(
    ray_cluster: str, base_config: SeaConfig, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, np.ndarray], str]:
    """The same pipeline on a local folder store: its arrays and its projections' sha256."""
    summary = collect(base_config, progress=False)
    assert (summary.shards, summary.shards_collected) == (4, 4)
    out = tmp_path_factory.mktemp("local-fit") / "fit"
    fit_store(base_config.store.url, out=out)
    return _read_all(base_config.store.url), _sha256(out / PROJECTIONS)


@pytest.fixture(scope="module")
def s3_store(ray_cluster: str, base_config: SeaConfig) -> str:
    """A complete store collected by Ray actors into ``s3://`` (shared; tests copy it to damage)."""
    url = f"s3://{BUCKET}/pipeline/store.zarr"
    summary = collect(_at(base_config, url), progress=False)
    assert summary.store_url == url
    assert (summary.shards, summary.shards_collected, summary.shards_skipped) == (4, 4, 0)
    assert summary.store_bytes > 0  # measured on S3
    return url


def test_pipeline_on_s3_matches_local_bit_for_bit(
    s3_store: str, reference: tuple[dict[str, np.ndarray], str], tmp_path: Path
) -> None:
    arrays, projections_sha = reference
    _assert_same_store(s3_store, arrays)
    names = {p.rsplit("/", 1)[-1] for p in _fs().ls(s3_store.removeprefix("s3://"))}
    assert {"zarr.json", "positive", "shard_done", "shard_digests"} <= names

    assert _cli("store", "verify", s3_store).stdout.startswith(f"OK: store {s3_store}: ")
    out = tmp_path / "fit"
    _cli("fit", s3_store, "--out", str(out))
    assert _sha256(out / PROJECTIONS) == projections_sha

    # The fit folder is local (written by rename); a URL is refused, not turned into ./s3:/...
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        with pytest.raises(FitError, match="a local folder") as refused:
            fit_store(s3_store, out=f"s3://{BUCKET}/fit")
        assert "sea-dist publish" in str(refused.value)
        assert not (tmp_path / "s3:").exists()

    registry = f"s3://{BUCKET}/registry"
    first = _cli("publish", str(out), "--name", "s3store", "--registry", registry).stdout
    assert first.splitlines()[0] == f"s3store@1 sha256:{projections_sha} (registry {registry})"

    from sea_dist.registry.filesystem import Registry

    published = Registry(registry)  # no storage options: the environment configures s3fs
    loaded = published.load("s3store@latest")  # checks the content hash
    assert loaded.manifest.sha256 == projections_sha
    data = published.storage.read_bytes("s3store", "versions", "1", PROJECTIONS)
    assert hashlib.sha256(data).hexdigest() == projections_sha


class _Interrupt(Exception):
    """Stands for a driver killed midway (raised from the progress callback)."""


def test_interrupted_collection_on_s3_resumes_only_missing_shards(
    ray_cluster: str, base_config: SeaConfig, reference: tuple[dict[str, np.ndarray], str]
) -> None:
    arrays, _ = reference
    url = f"s3://{BUCKET}/resume/store.zarr"
    config = _at(base_config, url)

    def stop_after_two(result: ShardResult) -> None:
        if result.shard >= 1:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        collect(config, progress=False, on_result=stop_after_two)
    done = ActivationStore.open(url).done_shards()
    assert {0, 1} <= done and len(done) < 4  # one actor, one shard in flight: in order

    redone: list[int] = []
    summary = collect(config, progress=False, on_result=lambda r: redone.append(r.shard))
    assert summary.shards_skipped == len(done)
    assert sorted(redone) == sorted(set(range(4)) - done)
    _assert_same_store(url, arrays)

    # A completion marker object lost on S3: exactly that shard is redone.
    _fs().rm(f"{BUCKET}/resume/store.zarr/shard_done/c/2")
    assert ActivationStore.open(url).pending_shards() == [2]
    redone.clear()
    summary = collect(config, progress=False, on_result=lambda r: redone.append(r.shard))
    assert (summary.shards_skipped, summary.shards_collected, redone) == (3, 1, [2])
    _assert_same_store(url, arrays)


def test_changed_chunk_on_s3_is_refused_named_and_repaired(
    s3_store: str,
    base_config: SeaConfig,
    reference: tuple[dict[str, np.ndarray], str],
    tmp_path: Path,
) -> None:
    arrays, projections_sha = reference
    url = f"s3://{BUCKET}/damaged/store.zarr"
    fs = _fs()
    fs.copy(s3_store.removeprefix("s3://"), url.removeprefix("s3://"), recursive=True)
    chunk = "positive/c/1/0/0"  # shard 1, layer 0
    key = f"{url.removeprefix('s3://')}/{chunk}"
    data = fs.cat_file(key)
    fs.pipe_file(key, data[:-1] + bytes([data[-1] ^ 1]))

    refused = _cli("fit", url, "--out", str(tmp_path / "fit"), check=False)
    assert refused.returncode == 2
    # stderr also carries the progress bar and botocore's INFO logs; the error is one line.
    errors = [line for line in refused.stderr.splitlines() if "sea-dist: error:" in line]
    assert len(errors) == 1, refused.stderr
    assert f"(chunk {chunk})" in errors[0] and "shard 1 positive layer 0" in errors[0]
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "fit").exists()

    verified = _cli("store", "verify", url, check=False)
    assert verified.returncode == 2
    assert [line for line in verified.stdout.splitlines() if chunk in line], verified.stdout

    # The reliability loop on S3: mark the damaged shard pending, re-run, only it is redone.
    _cli("store", "verify", url, "--mark-pending", check=False)
    assert ActivationStore.open(url).pending_shards() == [1]
    redone: list[int] = []
    collect(_at(base_config, url), progress=False, on_result=lambda r: redone.append(r.shard))
    assert redone == [1]
    _assert_same_store(url, arrays)
    assert _cli("store", "verify", url).stdout.startswith("OK: ")
    _cli("fit", url, "--out", str(tmp_path / "fit"))
    assert _sha256(tmp_path / "fit" / PROJECTIONS) == projections_sha


def test_store_target_on_s3_sees_what_other_processes_changed(aws_env: None) -> None:
    # s3fs caches listings in its shared instance; the check must not judge by an old one.
    url = f"s3://{BUCKET}/target/store.zarr"
    other = _fs()  # stands for another process (a user cleaning up, another node)
    other.pipe_file(f"{BUCKET}/target/store.zarr/notes.txt", b"not a store")
    with pytest.raises(StoreError, match=r"not a store, holding 1 entries \['notes.txt'\]"):
        check_store_target(url, overwrite=True)
    other.rm(f"{BUCKET}/target/store.zarr/notes.txt")
    check_store_target(url, overwrite=False)  # nothing there now: a store may be created
    other.pipe_file(f"{BUCKET}/target/file", b"x")
    with pytest.raises(StoreError, match="found a file; nothing was deleted"):
        check_store_target(f"s3://{BUCKET}/target/file", overwrite=True)
