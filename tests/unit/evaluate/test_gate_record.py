"""The run's evaluation record (sea_dist.evaluate.gate_record) on a tiny random model.

The fit is a synthetic fit output shaped for the tiny llama (d=32, 3 layers), so no Ray or Dask
run is needed; TruthfulQA is a 6-question CSV in the TruthfulQA format written here.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from synthetic_fit import write_synthetic_fit

from sea_dist.config import SeaConfig, config_from_dict, with_overrides
from sea_dist.edit import load_edit
from sea_dist.evaluate.gate_record import gate_evaluation, heldout_truthfulqa, random_control
from sea_dist.format.recipe import DAMAGE_METRICS, EditRecipe, gate_failures

QUESTIONS = [(f"What is {i} plus {i}?", str(2 * i), str(2 * i + 1)) for i in range(6)]


def write_truthfulqa(folder: Path, questions: list[tuple[str, str, str]] = QUESTIONS) -> Path:
    """A TruthfulQA.csv (original header) under ``folder/truthfulqa``; returns ``folder``."""
    (folder / "truthfulqa").mkdir(parents=True, exist_ok=True)
    with open(folder / "truthfulqa" / "TruthfulQA.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "Type",
                "Category",
                "Question",
                "Best Answer",
                "Correct Answers",
                "Incorrect Answers",
                "Source",
            ]
        )
        for question, true, false in questions:
            writer.writerow(
                ["Adversarial", "Maths", question, true, f"{true}; It is {true}", false, "test"]
            )
    return folder


@pytest.fixture
def fit_dir(tmp_path: Path) -> Path:
    return write_synthetic_fit(
        tmp_path / "fit", d_model=32, n_model_layers=3, layers=(0, 2), model_id="tiny-llama"
    )


def _config(**sections: Any) -> SeaConfig:
    return config_from_dict({"evaluate": {"batch_size": 8}, **sections})


def _evaluate(config: SeaConfig, loaded: Any, fit_dir: Path) -> Any:
    return gate_evaluation(
        config, loaded, fit_dir, progress=False, generation_limit=4, max_new_tokens=3, resamples=200
    )


def test_record_measures_effect_against_controls_and_damage(
    tiny_model: Any, fit_dir: Path, tmp_path: Path
) -> None:
    data = write_truthfulqa(tmp_path / "data")
    config = _config(evaluate={"batch_size": 8, "data_dir": str(data)})
    result = _evaluate(config, tiny_model, fit_dir)
    record, metrics = result.record, result.record.metrics

    assert record.effect == "truthfulqa_mc2_margin" and record.source == "run"
    for key in (*DAMAGE_METRICS, "effect", "effect_lo", "effect_hi"):
        assert metrics[key] is not None and np.isfinite(metrics[key]), key
    low, effect, high = (metrics[k] for k in ("effect_lo", "effect", "effect_hi"))
    assert low is not None and effect is not None and high is not None
    assert low <= effect <= high
    # The effect is SEA minus the best control, whose mean MC2 is the highest of the controls.
    edited, best = metrics["truthfulqa_mc2_edited"], metrics["truthfulqa_mc2_best_control"]
    assert edited is not None and best is not None
    assert effect == pytest.approx(edited - best)
    assert metrics["truthfulqa_n"] == len(QUESTIONS)
    ratio = metrics["perplexity_ratio"]
    assert ratio == pytest.approx(metrics["perplexity_edited"] / metrics["perplexity_unedited"])
    # The record names the projections it measured (publish checks it against the fit).
    digest = hashlib.sha256((fit_dir / "projections.safetensors").read_bytes())
    assert digest.hexdigest().startswith(record.data_fingerprints["projections"])
    assert result.recipe == EditRecipe(
        layers="all", positive_energy=0.99, negative_energy=0.99, name="run"
    )
    tasks = {(row.task, row.metric) for row in result.rows}
    assert ("truthfulqa (held out)", "MC2") in tasks
    assert ("builtin", "accuracy") in tasks and ("builtin", "answer rate (greedy)") in tasks

    result.write(fit_dir)
    assert json.loads((fit_dir / "evaluation.json").read_text())["effect"] == record.effect
    assert load_edit(str(fit_dir)).recipe == result.recipe


def test_without_benchmark_data_the_effect_is_not_measured(
    tiny_model: Any, fit_dir: Path, tmp_path: Path, no_benchmark_data: None
) -> None:
    config = _config(evaluate={"batch_size": 8, "data_dir": str(tmp_path / "empty")})
    result = _evaluate(config, tiny_model, fit_dir)
    metrics = result.record.metrics
    assert metrics["effect"] is None and metrics["effect_lo"] is None
    assert metrics["logprob_per_token_delta"] is None
    assert metrics["perplexity_ratio"] is not None  # damage that needs no benchmark is measured
    reasons = gate_failures(result.record)
    assert "truthfulqa_mc2_margin interval not measured" in reasons
    assert "logprob_per_token_delta not measured" in reasons
    assert any("fix: sea-dist data fetch truthfulqa" in note for note in result.notes)


def test_fitted_questions_are_not_evaluated(tmp_path: Path) -> None:
    data = write_truthfulqa(tmp_path / "data")
    config = _config(
        data={"source": "truthfulqa", "path": str(data / "truthfulqa" / "TruthfulQA.csv")}
        | {"limit": 4},
        evaluate={"data_dir": str(data), "limit": 10},
    )
    notes: list[str] = []
    held_out = heldout_truthfulqa(config, notes)
    assert [item.question for item in held_out] == [q for q, _, _ in QUESTIONS[4:]]
    assert notes == [
        "gate: 4 TruthfulQA questions are demonstrations of the fit; left out of the evaluation"
    ]
    everything = with_overrides(config, data={"limit": None})
    assert heldout_truthfulqa(everything, notes) == []
    assert notes[-1] == "gate: no held-out TruthfulQA question; the effect is not measured"


def test_random_controls_keep_shapes_and_means(fit_dir: Path) -> None:
    edit = load_edit(str(fit_dir))
    control = random_control(edit, 0)
    again = random_control(edit, 0)
    other = random_control(edit, 1)
    for layer, proj in edit.layers.items():
        made = control.layers[layer]
        assert made.u_pos.shape == proj.u_pos.shape and made.u_neg.shape == proj.u_neg.shape
        assert made.mean is not None and proj.mean is not None
        assert torch.equal(made.mean, proj.mean)
        for basis in (made.u_pos, made.u_neg):
            gram = basis.T @ basis
            assert torch.allclose(gram, torch.eye(gram.shape[0]), atol=1e-5)
        assert torch.equal(made.u_pos, again.layers[layer].u_pos)  # seeded
        assert not torch.equal(made.u_pos, other.layers[layer].u_pos)
        assert not torch.allclose(made.u_pos, proj.u_pos)
