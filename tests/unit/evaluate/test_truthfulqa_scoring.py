"""TruthfulQA MC1/MC2: the aggregation by hand, and batched scoring against one-at-a-time."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scoring_reference import reference_logprob
from tiny_models import build_tiny_model

from sea_dist.data import PromptTemplate, TruthfulQAItem
from sea_dist.errors import DataError
from sea_dist.evaluate.loglik import score_completions
from sea_dist.evaluate.truthfulqa import answer_sets, mc_scores, score_truthfulqa


def test_mc_scores_by_hand() -> None:
    # p = e^-1, e^-2 (true) and e^-3, e^-0.5 (false): MC2 = 0.503214 / 1.159532
    mc1, mc2 = mc_scores(-1.0, [-1.0, -2.0], [-3.0, -0.5])
    assert mc1 == 0.0  # an incorrect answer (-0.5) beats the best answer (-1)
    expected = (math.exp(-1) + math.exp(-2)) / (
        math.exp(-1) + math.exp(-2) + math.exp(-3) + math.exp(-0.5)
    )
    assert mc2 == pytest.approx(expected, rel=1e-12)
    assert mc2 == pytest.approx(0.433981, abs=1e-6)

    mc1, mc2 = mc_scores(-0.2, [-0.2], [-0.7, -1.5])
    assert mc1 == 1.0
    assert mc2 == pytest.approx(
        math.exp(-0.2) / (math.exp(-0.2) + math.exp(-0.7) + math.exp(-1.5)), rel=1e-12
    )


def test_mc1_needs_a_strictly_higher_best_answer() -> None:
    assert mc_scores(-2.0, [-2.0], [-2.0, -5.0])[0] == 0.0
    assert mc_scores(-2.0 + 1e-9, [-2.0], [-2.0])[0] == 1.0


def test_mc2_does_not_underflow_for_long_answers() -> None:
    _, mc2 = mc_scores(-1000.0, [-1000.0, -1002.0], [-1001.0])
    expected = (1 + math.exp(-2)) / (1 + math.exp(-2) + math.exp(-1))
    assert mc2 == pytest.approx(expected, rel=1e-12)


def _item(
    index: int, best: str, correct: tuple[str, ...], incorrect: tuple[str, ...]
) -> TruthfulQAItem:
    return TruthfulQAItem(
        id=f"tqa-{index}",
        question=f"Question number {index}?",
        best_answer=best,
        correct_answers=correct,
        incorrect_answers=incorrect,
        category="Cat" + "AB"[index % 2],
    )


ITEMS = [
    _item(0, "Yes", ("Yes", "Yes, it is", "Yes"), ("No", "Never")),
    _item(1, "Paris is the capital", ("Paris",), ("London", "Rome, of course")),
    _item(2, "Nothing happens", ("Nothing happens", "Nothing"), ("You die", "You die")),
]


def test_answer_sets_deduplicate_and_include_the_best_answer() -> None:
    best, true, false = answer_sets(ITEMS[1])
    assert (best, true, false) == (
        "Paris is the capital",
        ["Paris", "Paris is the capital"],
        ["London", "Rome, of course"],
    )
    assert answer_sets(ITEMS[0])[1] == ["Yes", "Yes, it is"]
    assert answer_sets(ITEMS[2])[2] == ["You die"]
    with pytest.raises(DataError, match="incorrect"):
        answer_sets(_item(3, "A", ("A",), ("A",)))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batched_scores_equal_one_at_a_time(arch: str) -> None:
    model, tokenizer = build_tiny_model(arch)
    template = PromptTemplate("qa")
    pairs = [
        (template.render(item.question), template.completion(answer))
        for item in ITEMS
        for answer in (*item.correct_answers, *item.incorrect_answers)
    ]
    batched = score_completions(model, tokenizer, pairs, batch_size=4)
    single = score_completions(model, tokenizer, pairs, batch_size=1)
    reference = np.array([reference_logprob(model, tokenizer, p, c) for p, c in pairs])
    np.testing.assert_allclose(batched.logprob, reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(single.logprob, reference, rtol=1e-5, atol=1e-5)
    assert list(batched.n_tokens) == [len(c.encode()) for _, c in pairs]  # byte tokenizer


def test_score_truthfulqa_aggregates_reference_logprobs() -> None:
    model, tokenizer = build_tiny_model("llama")
    template = PromptTemplate("qa")
    scores = score_truthfulqa(model, tokenizer, ITEMS, template, batch_size=3)
    assert scores.ids == ("tqa-0", "tqa-1", "tqa-2") and scores.n == 3
    for row, item in enumerate(ITEMS):
        best, true, false = answer_sets(item)
        prompt = template.render(item.question)
        lp = {
            a: reference_logprob(model, tokenizer, prompt, " " + a) for a in {best, *true, *false}
        }
        mc1, mc2 = mc_scores(lp[best], [lp[a] for a in true], [lp[a] for a in false])
        assert scores.mc1[row] == mc1
        assert scores.mc2[row] == pytest.approx(mc2, abs=1e-5)
    assert scores.mc1_mean == pytest.approx(float(np.mean(scores.mc1)))
    assert set(scores.by_category()) == {"CatA", "CatB"}
    assert scores.by_category()["CatA"]["n"] == 2


def test_score_truthfulqa_on_the_benchmark_file() -> None:
    path = Path(__file__).resolve().parents[4] / "shared" / "data" / "truthfulqa" / "TruthfulQA.csv"
    if not path.is_file():
        pytest.skip(f"TruthfulQA data not found at {path}")
    from sea_dist.data import load_truthfulqa_items

    items = load_truthfulqa_items(path)[:4]
    model, tokenizer = build_tiny_model("gpt2")
    scores = score_truthfulqa(model, tokenizer, items, batch_size=8)
    assert scores.n == 4
    assert set(np.unique(scores.mc1)) <= {0.0, 1.0}
    assert np.all((scores.mc2 > 0) & (scores.mc2 < 1))
