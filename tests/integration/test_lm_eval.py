"""lm-eval and sea-dist agree on the real demo model (SmolLM2-135M), unedited and edited.

A handful of real TruthfulQA questions (the data locations: skipped with the fix when absent) are
scored by lm-eval's ``truthfulqa_mc2`` (offline definition) and by sea-dist's own scorer with the
same prompt and candidates; the issue asks for agreement within 0.005 MC2. The edit is a random
synthetic one of the demo model's shape, applied with hooks: it only has to change the scores.
Marked ``slow`` (it uses ``demo_model``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sea_dist.models import LoadedModel

N_QUESTIONS = 2
TOLERANCE = 0.005


def test_lm_eval_agrees_with_sea_dist_on_the_demo_model(
    demo_model: LoadedModel, tmp_path: Path
) -> None:
    pytest.importorskip("lm_eval")
    from synthetic_fit import write_synthetic_fit

    from sea_dist.data import load_truthfulqa_items
    from sea_dist.data.locate import find_benchmark_file, missing_data_hint
    from sea_dist.edit import apply_edit
    from sea_dist.evaluate.harness import mc2_agreement
    from sea_dist.evaluate.runner import subset

    path = find_benchmark_file("truthfulqa/TruthfulQA.csv")
    if path is None:
        pytest.skip(missing_data_hint("truthfulqa/TruthfulQA.csv"))
    items = subset(load_truthfulqa_items(path), N_QUESTIONS)
    unedited = mc2_agreement(demo_model.model, demo_model.tokenizer, items, batch_size=8)
    config = demo_model.model.config
    fit = write_synthetic_fit(
        tmp_path / "fit",
        d_model=config.hidden_size,
        n_model_layers=config.num_hidden_layers,
        layers=(config.num_hidden_layers - 2, config.num_hidden_layers - 1),
        k_pos=32,
        k_neg=32,
    )
    with apply_edit(demo_model, fit, allow_model_mismatch=True):
        edited = mc2_agreement(demo_model.model, demo_model.tokenizer, items, batch_size=8)
    for result in (unedited, edited):
        assert result.n == N_QUESTIONS
        assert result.gap < TOLERANCE, result
        assert result.max_question_gap < TOLERANCE, result
    assert edited.lm_eval_mc2 != unedited.lm_eval_mc2
