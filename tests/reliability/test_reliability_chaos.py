"""Chaos: 20 runs of collect -> fit -> publish on a tiny model, each with one random fault.

Faults (drawn with a fixed seed, so a failure reproduces with the same kinds and files; kill
moments are random): a stage's process killed with SIGKILL at a random moment, or one random file
of the activation store or of the fit output truncated, bit-flipped or deleted.

What must hold, per run:
- after a kill, nothing half-published is visible, and running the same commands again finishes
  with the clean run's artifact (collection and fit resume or redo);
- after damage to a file, the remaining stages end either with the clean run's artifact (bit for
  bit: same projections sha256, same per-layer k) or with a one-line error (exit 2) and nothing
  published.

Every stage is the real CLI: collection joins one local Ray head started for the module; killed
stages run as subprocesses. The counts are printed and written to ``chaos-counts.json`` in the
test's temporary folder. ``CHAOS_SEED=N CHAOS_RUNS=M`` draws another set of faults.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cli_outcome import Outcome, refusal_problems
from ray_head import free_port, local_ray_head

from sea_dist.registry.filesystem import Registry

pytestmark = [pytest.mark.fault, pytest.mark.slow]

# CI draws the same 20 faults each time; set CHAOS_SEED / CHAOS_RUNS to explore others.
RUNS = int(os.environ.get("CHAOS_RUNS", "20"))
SEED = int(os.environ.get("CHAOS_SEED", "20261204"))
NAME = "chaos"
KINDS = (
    "kill-collect",
    "kill-fit",
    "kill-publish",
    "store-truncate",
    "store-flip",
    "store-delete",
    "fit-truncate",
    "fit-flip",
    "fit-delete",
)
STAGE_TIMEOUT_S = 300


@dataclass(frozen=True)
class Cluster:
    address: str
    model: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from tiny_models import save_tiny_model

    model = save_tiny_model("llama", tmp_path_factory.mktemp("model") / "tiny-llama")
    port = free_port()
    with local_ray_head("sea-chaos-", gcs_port=port):
        yield Cluster(f"127.0.0.1:{port}", model)


def _config(root: Path, cluster: Cluster) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = {
        "model": {"id": str(cluster.model), "device": "cpu", "dtype": "float32"},
        "data": {"source": "builtin", "limit": 16},
        "collect": {
            "layers": [0, 2],
            "neutral": "prompt",
            "batch_size": 4,
            "rows_per_shard": 4,
            "num_actors": 1,
            "ray_address": cluster.address,
        },
        "store": {"url": str(root / "store.zarr")},
        "fit": {"out": str(root / "fit")},
        "publish": {"registry": str(root / "registry"), "name": NAME, "aliases": []},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _command(stage: str, config: Path) -> list[str]:
    root = config.parent
    cli = [sys.executable, "-m", "sea_dist.cli"]
    if stage == "collect":
        return [*cli, "collect", str(config), "--no-progress"]
    if stage == "fit":
        return [*cli, "fit", "--config", str(config), "--overwrite"]
    return [*cli, "publish", str(root / "fit"), "--config", str(config)]


def _run(stage: str, config: Path, kill_after: float | None = None) -> Outcome:
    """Run one stage's CLI as a subprocess; SIGKILL its process group after ``kill_after`` s."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("SEA_DIST_REGISTRY", None)
    process = subprocess.Popen(
        _command(stage, config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=config.parent,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=kill_after if kill_after else STAGE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        if kill_after is None:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=60)
        return Outcome(-9, out, err)
    return Outcome(process.returncode, out, err)


@dataclass(frozen=True)
class Published:
    sha256: str
    ks: tuple[tuple[int, int, int], ...]


def _published(root: Path) -> list[Published]:
    registry = root / "registry"
    if not registry.exists():
        return []
    reg = Registry(str(registry))
    found = []
    for row in reg.versions(NAME) if NAME in reg.names() else []:
        manifest = reg.manifest(f"{NAME}@{row['version']}")
        reg.load(f"{NAME}@{row['version']}")  # every visible version loads and verifies
        ks = tuple((s.layer, s.k_pos, s.k_neg) for s in manifest.per_layer)
        found.append(Published(manifest.sha256, ks))
    return found


def _pipeline(config: Path, stages: tuple[str, ...] = ("collect", "fit", "publish")) -> Outcome:
    """Run stages in order; the first that does not exit 0 ends the run."""
    outcome = Outcome(0, "", "")
    for stage in stages:
        outcome = _run(stage, config)
        if outcome.code != 0:
            return outcome
    return outcome


def _damage(folder: Path, how: str, rng: random.Random) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    target = rng.choice(files)
    size = target.stat().st_size
    if how == "delete":
        target.unlink()
    elif how == "truncate":
        with target.open("r+b") as handle:
            handle.truncate(rng.randrange(size) if size else 0)
    else:
        data = bytearray(target.read_bytes())
        if not data:
            data = bytearray(b"\x01")
        else:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        target.write_bytes(bytes(data))
    return f"{how} {target.relative_to(folder.parent)} ({size} bytes)"


@dataclass(frozen=True)
class Clean:
    """The uninterrupted run: its folder, its artifact and how long each stage took."""

    root: Path
    artifact: Published
    seconds: dict[str, float]


def _one_run(
    index: int, kind: str, rng: random.Random, clean: Clean, cluster: Cluster, base: Path
) -> tuple[str, str]:
    """Run ``kind`` once; return (verdict, detail). Verdicts: correct, refused, WRONG."""
    root = base / f"run-{index:02d}-{kind}"
    config = _config(root, cluster)
    clean_root, expected = clean.root, clean.artifact
    fault, _, target = kind.partition("-")
    if fault == "kill":
        stages = ("collect", "fit", "publish")
        before = stages[: stages.index(target)]
        for stage in before:  # copy the clean inputs of the killed stage
            source = clean_root / {"collect": "store.zarr", "fit": "fit"}[stage]
            shutil.copytree(source, root / source.name)
        moment = rng.uniform(0.5, clean.seconds[target])
        killed = _run(target, config, kill_after=moment)
        detail = f"{target} killed after {moment:.1f} s (exit {killed.code})"
        seen = _published(root)  # a kill leaves a complete version or none
        if any(p != expected for p in seen):
            return "WRONG", detail + f"; after the kill: {seen}"
        outcome = _pipeline(config, stages[stages.index(target) :])
    else:
        folder = {"store": "store.zarr", "fit": "fit"}[fault]
        shutil.copytree(clean_root / "store.zarr", root / "store.zarr")
        if fault == "fit":
            shutil.copytree(clean_root / "fit", root / "fit")
        detail = _damage(root / folder, target, rng)
        outcome = _pipeline(config, ("fit", "publish") if fault == "store" else ("publish",))
    published = _published(root)
    if outcome.code == 0 and published and all(p == expected for p in published):
        return "correct", detail
    if outcome.code != 0 and not published and not refusal_problems(outcome):
        return "refused", detail + f": {outcome.text.splitlines()[-1][:200]}"
    return "WRONG", detail + f"; exit {outcome.code}; published {published}; {outcome.text[-1500:]}"


def test_twenty_runs_each_with_one_fault(
    cluster: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean_root = _config(tmp_path_factory.mktemp("clean"), cluster).parent
    seconds = {}
    for stage in ("collect", "fit", "publish"):
        started = time.monotonic()
        outcome = _run(stage, clean_root / "config.yaml")
        assert outcome.code == 0, outcome.text
        seconds[stage] = time.monotonic() - started
    (artifact,) = _published(clean_root)
    clean = Clean(clean_root, artifact, seconds)

    rng = random.Random(SEED)
    kinds = [KINDS[i % len(KINDS)] for i in range(RUNS)]
    rng.shuffle(kinds)
    base = tmp_path_factory.mktemp("chaos")
    results = [_one_run(i, kind, rng, clean, cluster, base) for i, kind in enumerate(kinds)]

    counts = Counter(verdict for verdict, _ in results)
    report = {
        "runs": RUNS,
        "counts": dict(counts),
        "clean_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "runs_detail": [
            {"kind": kind, "verdict": verdict, "detail": detail}
            for kind, (verdict, detail) in zip(kinds, results, strict=True)
        ],
    }
    (base / "chaos-counts.json").write_text(json.dumps(report, indent=2))
    with capsys.disabled():
        print(f"\nchaos: {RUNS} runs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        for kind, (verdict, detail) in zip(kinds, results, strict=True):
            print(f"  {verdict:8s} {kind:15s} {detail}")
    wrong = [
        (kind, detail)
        for kind, (verdict, detail) in zip(kinds, results, strict=True)
        if verdict == "WRONG"
    ]
    assert not wrong, wrong
    assert counts["correct"] + counts["refused"] == RUNS
