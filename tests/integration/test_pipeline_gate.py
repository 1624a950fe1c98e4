"""``sea-dist run`` end to end on a local Ray cluster: a failing record leaves production unset.

Same tiny setup as the Jobs test (a random 3-layer llama saved to a folder, 16 built-in
demonstrations, 2 layers, ``neutral: prompt``), in process: one local Ray cluster (2 CPUs) for the
module. TruthfulQA is a 4-question CSV in the original format; the damage budget allows no
perplexity change at all, so the record fails whatever the random model does. The run must still
exit 0, publish the version with its recipe and evaluation record, move the ungated alias, leave
``production`` unset and print one ``gate: production not moved to ...`` line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sea_dist.cli import main
from sea_dist.registry.filesystem import Registry

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    # address="local": a fresh cluster even if another one runs on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _truthfulqa(folder: Path) -> Path:
    (folder / "truthfulqa").mkdir(parents=True)
    with open(folder / "truthfulqa" / "TruthfulQA.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["Type", "Category", "Question", "Best Answer", "Correct Answers"]
            + ["Incorrect Answers", "Source"]
        )
        for i in range(4):
            writer.writerow(
                ["Adversarial", "Maths", f"What is {i} times 3?", str(3 * i), str(3 * i)]
                + [f"{3 * i + 1}; {3 * i + 2}", "test"]
            )
    return folder


def _config(root: Path, model: Path) -> dict[str, Any]:
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
        "publish": {
            "registry": str(root / "registry"),
            "name": "gate-run",
            "aliases": ["production", "nightly"],
        },
        "evaluate": {
            "tasks": ["truthfulqa"],
            "data_dir": str(_truthfulqa(root / "data")),
            "out": str(root / "eval"),
            "budget": {"max_perplexity_ratio": 1e-9},
        },
    }


def test_failing_record_leaves_production_unset(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tiny_models import save_tiny_model

    model = save_tiny_model("llama", tmp_path / "tiny-llama")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path, model)))

    code = main(["run", str(config), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    gate_lines = [line for line in out.splitlines() if line.startswith("gate: ")]
    assert len(gate_lines) == 1, out
    assert gate_lines[0].startswith("gate: production not moved to gate-run@1: perplexity_ratio ")
    assert "gate-run@nightly -> gate-run@1" in out
    assert "gate record: truthfulqa_mc2_margin " in out and ": FAIL (" in out
    assert "| truthfulqa (held out) | MC2, best of 3 random controls | 4 |" in out

    registry = Registry(str(tmp_path / "registry"))
    assert registry.aliases("gate-run") == {"nightly": 1}
    assert [h["version"] for h in registry.alias_history("gate-run", "production")] == []
    manifest = registry.manifest("gate-run@1")
    record = manifest.evaluation_record()
    assert record is not None and not record.passed and record.source == "run"
    assert record.metrics["truthfulqa_n"] == 4
    recipe = manifest.edit_recipe()
    assert recipe is not None and recipe.name == "run" and recipe.layers == "all"
    assert registry.versions("gate-run")[0]["gate"] == "fail"
    fit = tmp_path / "fit"
    assert json.loads((fit / "evaluation.json").read_text())["passed"] is False
    assert json.loads((fit / "recipe.json").read_text()) == manifest.recipe
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "gate: production not moved to gate-run@1" in report
