"""The pipeline job submitted through the Ray Jobs SDK to a real local Ray head.

One head per module (``ray start --head --block`` on 127.0.0.1 in its own process group, its own
``--temp-dir``, stopped by signalling that process, so no other Ray cluster on the machine is
touched). Jobs are submitted over HTTP with :class:`ray.job_submission.JobSubmissionClient`, the
repository as ``working_dir``, and the venv's python by absolute path (the job's default python
may lack the packages). The config is tiny: a random 3-layer llama saved to a folder, 16 built-in
demonstrations, 2 layers, ``neutral: prompt``, the ``builtin`` evaluation on 8 questions, every
path absolute inside ``tmp_path``. ``collect.ray_address`` stays unset: the job must join the head
through the ``RAY_ADDRESS`` Ray sets for it, not start a cluster of its own.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray_head import local_ray_head

from sea_dist.cli.job_entry import parse_result
from sea_dist.collect.driver import ACTOR_PREFIX
from sea_dist.registry.filesystem import Registry

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 600  # 2 shared cores: the whole pipeline job takes 1-2 minutes
FINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@pytest.fixture(scope="module")
def dashboard() -> Iterator[str]:
    """Dashboard URL of a fresh local Ray head (2 CPUs), stopped after the module."""
    with local_ray_head("sea-jobs-") as address:
        yield address


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import save_tiny_model

    return save_tiny_model("llama", tmp_path_factory.mktemp("model") / "tiny-llama")


def tiny_config(root: Path, model: Path) -> dict[str, Any]:
    """The smallest full pipeline config, every path absolute under ``root``."""
    return {
        "model": {"id": str(model), "device": "cpu", "dtype": "float32"},
        "data": {"source": "builtin", "limit": 16},
        "collect": {
            "layers": [0, 2],
            "neutral": "prompt",
            "batch_size": 4,
            "rows_per_shard": 8,
            "num_actors": 1,
        },
        "store": {"url": str(root / "store.zarr")},
        "fit": {"out": str(root / "fit")},
        "publish": {"registry": str(root / "registry"), "name": "jobs-submit"},
        "evaluate": {"tasks": ["builtin"], "limit": 8, "out": str(root / "eval")},
    }


def submit(
    dashboard: str, config: Path, env_vars: dict[str, str] | None = None
) -> tuple[str, str, str]:
    """Submit ``jobs/pipeline.py --config config``; wait; return (job id, final status, logs)."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(dashboard)
    job_id = client.submit_job(
        # The venv's python by absolute path: the job's default python may lack the packages.
        entrypoint=shlex.join([sys.executable, "jobs/pipeline.py", "--config", str(config)]),
        runtime_env={
            "working_dir": str(REPO),  # uploaded; .gitignore'd paths (.venv, sea-runs) are not
            "excludes": [".git", ".gpu"],
            "env_vars": {
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                **(env_vars or {}),
            },
        },
    )
    deadline = time.monotonic() + JOB_TIMEOUT_S
    status = str(client.get_job_status(job_id))
    while status not in FINAL and time.monotonic() < deadline:
        time.sleep(1)
        status = str(client.get_job_status(job_id))
    if status not in FINAL:
        client.stop_job(job_id)  # do not leave it running on the shared machine
    return job_id, status, client.get_job_logs(job_id)


def collector_actors(dashboard: str) -> list[str]:
    from ray.util.state import list_actors

    actors = list_actors(address=dashboard, limit=1000)
    return [str(a.name) for a in actors if str(a.name).startswith(ACTOR_PREFIX)]


def test_pipeline_job_succeeds_and_publishes(
    dashboard: str, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, model_dir)))

    job_id, status, logs = submit(dashboard, config)
    with capsys.disabled():  # the job's output is the evidence this test exists for
        print(f"\n$ ray job logs {job_id}  # status {status}\n{logs}")
    assert status == "SUCCEEDED", f"job {job_id} ended {status}; logs:\n{logs}"

    result = parse_result(logs)
    assert result is not None, f"no SEA_DIST_RESULT line in the logs:\n{logs}"
    assert result["status"] == "ok" and result["job"] == "pipeline", result
    assert result["artifact"] == "jobs-submit@1", result
    assert result["registry"] == str(tmp_path / "registry")
    assert ("builtin", "accuracy") in [(m["task"], m["metric"]) for m in result["metrics"]]
    assert Path(result["report"]).is_file()

    # The job joined the head through RAY_ADDRESS; its collector ran there.
    assert "Started a local Ray instance" not in logs
    assert collector_actors(dashboard), "no collector actor was recorded by the head"

    registry = Registry(str(tmp_path / "registry"))
    assert registry.resolve(result["artifact"]).ref == "jobs-submit@1"
    assert [v["ref"] for v in registry.versions("jobs-submit")] == ["jobs-submit@1"]
    assert sorted(registry.load(result["artifact"]).layers) == [0, 2]


def test_broken_config_fails_with_one_line_error(dashboard: str, tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text(yaml.safe_dump({"collect": {"batch_size": "eight"}}))

    job_id, status, logs = submit(dashboard, config)
    assert status == "FAILED", f"job {job_id} ended {status}; logs:\n{logs}"
    assert "collect.batch_size: expected int, found 'eight'" in logs, logs
    assert "Traceback" not in logs, logs
    result = parse_result(logs)
    assert result is not None and result["status"] == "error", logs
    assert result["error"] == "collect.batch_size: expected int, found 'eight'"


def _relative_outputs(config: dict[str, Any]) -> dict[str, Any]:
    """The config with every output relative, as in the README's walkthrough (sea-runs/...)."""
    config["store"]["url"] = "sea-runs/relative/store.zarr"
    config["fit"]["out"] = "sea-runs/relative/fit"
    config["publish"]["registry"] = "sea-runs/relative/registry"
    config["evaluate"]["out"] = "sea-runs/relative/eval"
    return config


def test_relative_outputs_without_a_base_are_refused_before_work(
    dashboard: str, model_dir: Path, tmp_path: Path
) -> None:
    """Class 9 of the reliability issue: the job must not publish into Ray's temporary copy."""
    config = tmp_path / "relative.yaml"
    config.write_text(yaml.safe_dump(_relative_outputs(tiny_config(tmp_path, model_dir))))

    job_id, status, logs = submit(dashboard, config)
    assert status == "FAILED", f"job {job_id} ended {status}; logs:\n{logs}"
    result = parse_result(logs)
    assert result is not None and result["status"] == "error", logs
    assert result["error"].startswith("store.url: expected a location that outlives the Ray job")
    assert "SEA_DIST_OUTPUT_BASE" in result["error"] and "Traceback" not in logs


def test_relative_outputs_land_under_the_base_the_runtime_env_names(
    dashboard: str, model_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "relative.yaml"
    config.write_text(yaml.safe_dump(_relative_outputs(tiny_config(tmp_path, model_dir))))
    base = tmp_path / "shared"

    job_id, status, logs = submit(dashboard, config, {"SEA_DIST_OUTPUT_BASE": str(base)})
    assert status == "SUCCEEDED", f"job {job_id} ended {status}; logs:\n{logs}"
    result = parse_result(logs)
    assert result is not None and result["artifact"] == "jobs-submit@1", logs
    root = base / "sea-runs" / "relative"
    assert result["registry"] == str(root / "registry")  # printed absolute
    assert result["store"] == str(root / "store.zarr") and result["fit_dir"] == str(root / "fit")
    assert Registry(str(root / "registry")).resolve("jobs-submit").version == 1
    assert Path(result["report"]).is_relative_to(root / "eval")
