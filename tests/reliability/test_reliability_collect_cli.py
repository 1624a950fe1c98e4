"""Bad input to ``sea-dist collect`` on a real local Ray cluster: one line, exit 2, no store.

Demonstration files are checked right after Ray starts, before any collector; the layer check
needs the model, so it runs inside a real collector actor and its error must still reach the user
as one line. A store URL that cannot be created is a write failure that must not be a traceback.
Every demonstrations case of the corpus goes through the command here (the loader-level test in
test_reliability_cli_corpus.py runs the same files without Ray, so they are counted once).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_outcome import refusal_problems, run_cli
from reliability_corpus import DEMO_CASES, DemoCase
from reliability_workspace import Workspace
from tree_snapshot import changes, tree_digest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import save_tiny_model

    return save_tiny_model("llama", tmp_path_factory.mktemp("model") / "tiny-llama")


def _config(ws: Workspace, name: str, model: Path, data: dict[str, str], **collect: str) -> str:
    store = collect.pop("store", str(ws.root / "stores" / f"{name}.zarr"))
    lines = [
        f"model:\n  id: {model}",
        "data:\n" + "".join(f"  {k}: {v}\n" for k, v in data.items()).rstrip(),
        "collect:\n  neutral: prompt\n  num_actors: 1\n  rows_per_shard: 2"
        + "".join(f"\n  {k}: {v}" for k, v in collect.items()),
        f"store:\n  url: {store}",
    ]
    path = ws.root / "cwd" / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _good_demos(ws: Workspace) -> str:
    path = ws.root / "cwd" / "good.jsonl"
    rows = [
        {"id": str(i), "prompt": f"Q{i}?", "positive": "yes", "negative": "no"} for i in range(4)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("case", DEMO_CASES, ids=[c.id for c in DEMO_CASES])
def test_collect_refuses_bad_demonstrations(
    case: DemoCase,
    ray_cluster: None,
    tiny_model_folder: Path,
    in_workspace: Workspace,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = {"source": case.source, "path": str(in_workspace.root / "inputs" / case.path)}
    if case.columns:
        data["columns"] = "{" + ", ".join(f"{k}: {v}" for k, v in case.columns.items()) + "}"
    config = _config(in_workspace, case.id, tiny_model_folder, data)
    before = tree_digest(in_workspace.root)
    outcome = run_cli(["collect", config, "--no-progress"], capsys)
    assert refusal_problems(outcome, case.expect) == []
    assert changes(before, tree_digest(in_workspace.root)) == []


def test_collect_refuses_layers_outside_the_model(
    ray_cluster: None,
    tiny_model_folder: Path,
    in_workspace: Workspace,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = {"source": "jsonl", "path": _good_demos(in_workspace)}
    config = _config(in_workspace, "layers-99", tiny_model_folder, data, layers="[99]")
    before = tree_digest(in_workspace.root)
    outcome = run_cli(["collect", config, "--no-progress"], capsys)
    assert refusal_problems(outcome, "found [99]") == []
    assert changes(before, tree_digest(in_workspace.root)) == []


@pytest.mark.fault
def test_collect_into_an_unwritable_store_is_one_line(
    ray_cluster: None,
    tiny_model_folder: Path,
    in_workspace: Workspace,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = {"source": "jsonl", "path": _good_demos(in_workspace)}
    blocker = in_workspace.root / "cwd" / "blocker"
    blocker.write_text("a file, not a folder")
    store = str(blocker / "store.zarr")
    config = _config(in_workspace, "unwritable", tiny_model_folder, data, store=store)
    outcome = run_cli(["collect", config, "--no-progress"], capsys)
    assert refusal_problems(outcome, "store.zarr") == []
