"""The registry on S3: a real S3-compatible server (moto) on 127.0.0.1, no rename, real HTTP.

The server (tests/s3_server.py) runs single-threaded, which makes the emulator's conditional put
atomic like S3's, so the concurrent-publish check below tests our protocol, not a gap in it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from synthetic_fit import write_synthetic_fit

from sea_dist.errors import ArtifactError
from sea_dist.format.recipe import EvaluationRecord
from sea_dist.format.tensors import sha256_hex
from sea_dist.registry.access import load_artifact
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.refs import NotFoundError

pytestmark = pytest.mark.integration
pytest.importorskip("s3fs")
pytest.importorskip("moto")

from s3_server import CREDENTIALS, make_bucket, options, s3_server  # noqa: E402


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    return make_bucket(s3_endpoint, "sea-" + request.node.name.lower().replace("_", "-")[:40])


def test_round_trip_on_s3(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    registry = Registry(f"s3://{bucket}/registry", storage_options=options(s3_endpoint))
    assert registry.storage.atomic_create and not registry.storage.local
    assert registry.storage.create_exclusive(b"a", "probe", "x.json")
    assert not registry.storage.create_exclusive(b"b", "probe", "x.json")  # If-None-Match: *
    assert registry.storage.read_bytes("probe", "x.json") == b"a"

    fits = [
        write_synthetic_fit(tmp_path / f"fit{i}", seed=i, model_id=f"m{i % 2}") for i in range(3)
    ]
    published = [registry.publish(fit, "s3demo") for fit in fits]
    assert [p.version for p in published] == [1, 2, 3]
    registry.set_alias("s3demo", "production", 2)
    assert registry.names() == ["s3demo"]
    assert [r["version"] for r in registry.versions("s3demo", model_id="m0")] == [1, 3]
    assert registry.storage.exists("s3demo", "index.parquet")
    assert registry.resolve("s3demo@production") == published[1]
    assert registry.resolve("s3demo") == published[2]
    assert registry.resolve(f"sha256:{published[0].sha256[:10]}") == published[0]
    assert registry.manifest("s3demo@1").sha256 == published[0].sha256
    assert registry.diff("s3demo@1", "s3demo@2")["layers"][0]["similarity_pos"] is not None

    folder = registry.download("s3demo@production", tmp_path / "dl")
    assert load_artifact(folder).manifest.sha256 == published[1].sha256
    by_ref = load_artifact(
        "s3demo@latest", registry=registry.url, storage_options=options(s3_endpoint)
    )
    assert by_ref.manifest.version == 3
    by_url = load_artifact(
        f"s3://{bucket}/registry/s3demo/versions/1", storage_options=options(s3_endpoint)
    )
    assert by_url.manifest.sha256 == published[0].sha256

    # A publisher that claimed 4 and died: 4 stays invisible and is never reused.
    registry.storage.create_exclusive(
        b'{"version": 4, "token": "dead"}', "s3demo", "claims", "4.json"
    )
    assert registry.publish(fits[0], "s3demo").version == 5
    with pytest.raises(NotFoundError):
        registry.resolve("s3demo@4")

    removed = registry.gc(keep=1)
    assert [e.target for e in removed] == ["s3demo@1", "s3demo@3"]
    assert registry.complete_versions("s3demo") == [2, 5]
    assert [r["version"] for r in registry.versions("s3demo")] == [2, 5]
    assert registry.alias_history("s3demo", "production")[0]["version"] == 2

    # Tampering with the object is caught on load.
    data = registry.storage.read_bytes("s3demo", "versions", "5", "projections.safetensors")
    registry.storage.write_bytes(
        data[:-1] + bytes([data[-1] ^ 1]), "s3demo", "versions", "5", "projections.safetensors"
    )
    with pytest.raises(ArtifactError, match="sha256"):
        registry.load("s3demo@5")


def _publish(endpoint: str, url: str, fit: str, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=240)
    results.put(Registry(url, storage_options=options(endpoint)).publish(fit, "race").version)


@pytest.mark.slow
def test_concurrent_publish_on_s3(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    url = f"s3://{bucket}/registry"
    count = 4
    fits = [str(write_synthetic_fit(tmp_path / f"fit{i}", seed=i)) for i in range(count)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(count), context.Queue()
    processes = [
        context.Process(target=_publish, args=(s3_endpoint, url, f, barrier, results)) for f in fits
    ]
    for process in processes:
        process.start()
    versions = sorted(results.get(timeout=300) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    assert versions == list(range(1, count + 1))
    registry = Registry(url, storage_options=options(s3_endpoint))
    assert [r["version"] for r in registry.versions("race")] == versions
    for version in versions:
        registry.load(f"race@{version}")


@pytest.mark.slow
def test_cli_round_trip_on_s3(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    # The CLI takes the endpoint from the standard AWS environment variable.
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}
    url = f"s3://{bucket}/cli"

    def cli(*argv: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "sea_dist.cli", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    fit = write_synthetic_fit(tmp_path / "fit")
    passing = EvaluationRecord(  # prod is gated: it moves only to a version that passes
        effect="truthfulqa_mc2_margin",
        metrics={"effect": 0.05, "effect_lo": 0.01, "perplexity_ratio": 1.0}
        | {"builtin_accuracy_delta": 0.0, "logprob_per_token_delta": 0.0, "generation_delta": 0.0},
    )
    (fit / "evaluation.json").write_text(json.dumps(passing.to_dict()))
    assert cli(
        "publish", str(fit), "--name", "cli", "--registry", url, "--alias", "prod"
    ).splitlines() == [
        f"cli@1 sha256:{sha256_hex((fit / 'projections.safetensors').read_bytes())} "
        f"(registry {url})",
        "cli@prod -> cli@1; gate passed",
    ]
    assert json.loads(cli("registry", "versions", "cli", "--registry", url, "--json"))["versions"][
        0
    ]["aliases"] == ["latest", "prod"]
    assert cli("registry", "resolve", "cli@prod", "--registry", url).startswith("cli@1 ")
    assert "verified" in cli("registry", "download", "cli", str(tmp_path / "dl"), "--registry", url)
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "sea_dist.cli",
            "publish",
            str(fit),
            "--name",
            "cli",
            "--registry",
            "s3://no-such-bucket-here/reg",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("sea-dist: error: registry storage: expected")
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "Traceback" not in missing.stderr
