"""The flat answer layout of TruthfulQA scoring: offsets, true marks, pairs order, MC from it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sea_dist.data import PromptTemplate, TruthfulQAItem
from sea_dist.errors import DataError
from sea_dist.evaluate.truthfulqa import (
    AnswerLayout,
    mc_from_logprobs,
    mc_scores,
    truthfulqa_pairs,
)


def _item(
    index: int, best: str, correct: tuple[str, ...], incorrect: tuple[str, ...]
) -> TruthfulQAItem:
    return TruthfulQAItem(
        id=f"tqa-{index}",
        question=f"Question {index}?",
        best_answer=best,
        correct_answers=correct,
        incorrect_answers=incorrect,
        category="Cat",
    )


def test_offsets_and_true_marks() -> None:
    layout = AnswerLayout(np.array([2, 1], dtype=np.int64), np.array([2, 3], dtype=np.int64))
    # block sizes 1 + 2 + 2 = 5 and 1 + 1 + 3 = 5
    np.testing.assert_array_equal(layout.offsets, [0, 5, 10])
    assert layout.offsets.dtype == np.int64
    expected = [True, True, True, False, False, True, True, False, False, False]
    np.testing.assert_array_equal(layout.is_true(), expected)
    assert layout.is_true().dtype == bool


def test_empty_layout() -> None:
    layout = AnswerLayout(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    np.testing.assert_array_equal(layout.offsets, [0])
    assert layout.is_true().shape == (0,)
    mc1, mc2 = mc_from_logprobs(np.zeros(0), layout)
    assert mc1.shape == mc2.shape == (0,)


def test_mc_from_logprobs_equals_mc_scores_per_question() -> None:
    layout = AnswerLayout(np.array([2, 1], dtype=np.int64), np.array([2, 3], dtype=np.int64))
    #              best  true        false        | best true  false
    flat = np.array([-1.0, -1.0, -2.0, -3.0, -0.5, -0.2, -0.2, -0.7, -1.5, -4.0])
    mc1, mc2 = mc_from_logprobs(flat, layout)
    q1 = mc_scores(-1.0, [-1.0, -2.0], [-3.0, -0.5])
    q2 = mc_scores(-0.2, [-0.2], [-0.7, -1.5, -4.0])
    np.testing.assert_array_equal(mc1, [q1[0], q2[0]])
    np.testing.assert_allclose(mc2, [q1[1], q2[1]], rtol=1e-15)
    assert mc1.tolist() == [0.0, 1.0]


def test_mc1_reads_the_best_slot_not_the_true_copy() -> None:
    # the best answer sits at the block start; MC1 must use that value (here differing from the
    # true-list copy on purpose, which a real scorer never produces)
    layout = AnswerLayout(np.array([1], dtype=np.int64), np.array([1], dtype=np.int64))
    mc1, _ = mc_from_logprobs(np.array([0.0, -9.0, -1.0]), layout)
    assert mc1.tolist() == [1.0]
    mc1, _ = mc_from_logprobs(np.array([-9.0, 0.0, -1.0]), layout)
    assert mc1.tolist() == [0.0]


@pytest.mark.parametrize("size", [9, 11, 0])
def test_wrong_number_of_scores_raises(size: int) -> None:
    layout = AnswerLayout(np.array([2, 1], dtype=np.int64), np.array([2, 3], dtype=np.int64))
    with pytest.raises(DataError, match="answer scores: expected 10 values"):
        mc_from_logprobs(np.zeros(size), layout)


def test_pairs_order_is_best_then_true_then_false() -> None:
    template = PromptTemplate("qa")
    items = [
        _item(0, "Yes", ("Yes", "Yes, it is", "Yes"), ("No", "Never")),
        _item(1, "Paris is the capital", ("Paris",), ("London", "Rome", "London")),
    ]
    pairs, layout = truthfulqa_pairs(items, template)
    q0, q1 = template.render("Question 0?"), template.render("Question 1?")
    c = template.completion
    assert pairs == [
        (q0, c("Yes")),  # best (MC1)
        (q0, c("Yes")),  # true answers, deduplicated, best included
        (q0, c("Yes, it is")),
        (q0, c("No")),  # false answers
        (q0, c("Never")),
        (q1, c("Paris is the capital")),
        (q1, c("Paris")),  # best added to the true set when missing, after the listed ones
        (q1, c("Paris is the capital")),
        (q1, c("London")),
        (q1, c("Rome")),
    ]
    np.testing.assert_array_equal(layout.n_true, [2, 2])
    np.testing.assert_array_equal(layout.n_false, [2, 2])
    assert layout.n_true.dtype == layout.n_false.dtype == np.int64
    assert layout.offsets[-1] == len(pairs)
    marks = layout.is_true()
    assert [p[1] for p, t in zip(pairs, marks) if not t] == [c(a) for a in ("No", "Never")] + [
        c(a) for a in ("London", "Rome")
    ]


def test_pairs_with_an_item_without_false_answers_raise() -> None:
    with pytest.raises(DataError, match="incorrect"):
        truthfulqa_pairs([_item(0, "A", ("A",), ("A",))], PromptTemplate("qa"))


def test_huge_score_gaps_do_not_overflow() -> None:
    layout = AnswerLayout(np.array([1], dtype=np.int64), np.array([1], dtype=np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, mc2 = mc_from_logprobs(np.array([-2000.0, -2000.0, 0.0]), layout)
    assert mc2[0] == pytest.approx(0.0, abs=1e-300)
