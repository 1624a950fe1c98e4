"""Paired bootstrap and the length baselines of the two-fold study, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sea_dist.errors import DataError
from sea_dist.evaluate.stats import (
    PairedDifference,
    length_only_scores,
    mean_logprob_change_per_token,
    paired_bootstrap,
    uniform_shift_scores,
)
from sea_dist.evaluate.truthfulqa import AnswerLayout, mc_from_logprobs

# -- paired_bootstrap -------------------------------------------------------------------------


def test_constant_difference_gives_a_zero_width_interval_at_that_value() -> None:
    b = np.array([0.0, 0.5, 1.0, 0.25, 0.75])
    a = b + 0.25  # every value exactly representable: the difference is exactly 0.25
    diff = paired_bootstrap(a, b, resamples=500)
    assert (diff.mean, diff.low, diff.high) == (0.25, 0.25, 0.25)
    assert diff.n == 5
    assert diff.level == 0.95
    assert diff.excludes_zero


def test_a_single_question_has_no_spread() -> None:
    diff = paired_bootstrap(np.array([0.7]), np.array([0.2]), resamples=100)
    assert diff.mean == pytest.approx(0.5)
    assert diff.low == pytest.approx(0.5)
    assert diff.high == pytest.approx(0.5)


def test_two_questions_percentiles_by_hand() -> None:
    # differences {0, 1}: a resample's mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4, so
    # the 2.5% and 97.5% percentiles of 10k resamples are 0 and 1
    diff = paired_bootstrap(np.array([1.0, 0.0]), np.array([0.0, 0.0]), resamples=10_000)
    assert diff.mean == 0.5
    assert (diff.low, diff.high) == (0.0, 1.0)
    assert not diff.excludes_zero


def test_mean_matches_and_interval_contains_it() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(60), rng.random(60)
    diff = paired_bootstrap(a, b, resamples=2000, seed=1)
    assert diff.mean == pytest.approx(float(np.mean(a - b)), abs=1e-15)
    assert diff.low <= diff.mean <= diff.high
    assert diff.low < diff.high


def test_interval_width_matches_the_normal_approximation() -> None:
    # for n = 400 normal differences the percentile interval is close to mean +- 1.96 sd/sqrt(n)
    rng = np.random.default_rng(11)
    a = rng.normal(0.1, 1.0, size=400)
    b = np.zeros(400)
    diff = paired_bootstrap(a, b, resamples=4000, seed=2)
    half = 1.96 * float(np.std(a)) / math.sqrt(400)
    assert diff.high - diff.low == pytest.approx(2 * half, rel=0.1)
    assert (diff.low + diff.high) / 2 == pytest.approx(diff.mean, abs=0.2 * half)


def test_narrower_level_gives_a_narrower_interval() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random(50), rng.random(50)
    wide = paired_bootstrap(a, b, resamples=2000, level=0.95)
    narrow = paired_bootstrap(a, b, resamples=2000, level=0.5)
    assert narrow.level == 0.5
    assert wide.low < narrow.low <= narrow.high < wide.high


def test_seed_is_reproducible_and_matters() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.random(30), rng.random(30)
    first = paired_bootstrap(a, b, resamples=1500, seed=4)
    again = paired_bootstrap(a, b, resamples=1500, seed=4)
    other = paired_bootstrap(a, b, resamples=1500, seed=5)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.mean == other.mean


def test_resamples_not_a_multiple_of_the_block_size() -> None:
    # the resampling runs in blocks of 1000; a ragged last block must still be filled
    rng = np.random.default_rng(8)
    a, b = rng.random(20), rng.random(20)
    diff = paired_bootstrap(a, b, resamples=1234)
    assert np.isfinite([diff.low, diff.high]).all()
    assert diff.low <= diff.mean <= diff.high


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (np.zeros(3), np.zeros(4)),  # mismatched
        (np.zeros(0), np.zeros(0)),  # empty
        (np.zeros((2, 2)), np.zeros((2, 2))),  # not one axis of questions
    ],
    ids=["mismatched", "empty", "two-dimensional"],
)
def test_bad_shapes_raise(a: np.ndarray, b: np.ndarray) -> None:
    with pytest.raises(DataError, match="paired scores"):
        paired_bootstrap(a, b, resamples=10)


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1])
def test_bad_level_raises(level: float) -> None:
    with pytest.raises(DataError, match="level"):
        paired_bootstrap(np.ones(3), np.zeros(3), resamples=10, level=level)


def test_no_resamples_raise_a_data_error() -> None:
    with pytest.raises(DataError, match="resamples"):
        paired_bootstrap(np.ones(3), np.zeros(3), resamples=0)


def test_paired_difference_format_and_sign() -> None:
    assert PairedDifference(0.012, 0.004, 0.02, 10).format() == "+0.012 [+0.004, +0.020]"
    assert PairedDifference(-0.5, -0.75, -0.25, 3).format(2) == "-0.50 [-0.75, -0.25]"
    assert PairedDifference(-0.5, -0.75, -0.25, 3).excludes_zero
    assert not PairedDifference(0.1, -0.1, 0.3, 3).excludes_zero
    assert not PairedDifference(0.1, 0.0, 0.3, 3).excludes_zero  # touching 0 is not excluding


# -- mean_logprob_change_per_token ------------------------------------------------------------


def test_mean_logprob_change_per_token_by_hand() -> None:
    edited = np.array([-1.0, -2.0, -3.0])
    unedited = np.array([-0.5, -1.0, -2.0])
    tokens = np.array([1, 2, 3])
    # (-0.5 - 1.0 - 1.0) / 6
    assert mean_logprob_change_per_token(edited, unedited, tokens) == pytest.approx(-2.5 / 6)
    assert mean_logprob_change_per_token(unedited, unedited, tokens) == 0.0


def test_mean_logprob_change_needs_tokens() -> None:
    with pytest.raises(DataError, match="answer tokens"):
        mean_logprob_change_per_token(np.zeros(2), np.zeros(2), np.zeros(2, dtype=np.int64))


# -- length baselines -------------------------------------------------------------------------

# Two questions laid out as best, true..., false...:
#   q1: best 3 tokens; true (best again, 5); false (2, 4)    -> a false answer is shortest
#   q2: best 1 token;  true (best again);   false (4, 6)     -> the best answer is shortest
LAYOUT = AnswerLayout(np.array([2, 1], dtype=np.int64), np.array([2, 2], dtype=np.int64))
TOKENS = np.array([3, 3, 5, 2, 4, 1, 1, 4, 6], dtype=np.int64)


def test_length_only_prefers_the_shortest_answer() -> None:
    mc1, mc2 = length_only_scores(TOKENS, LAYOUT)
    np.testing.assert_array_equal(mc1, [0.0, 1.0])
    e = math.exp
    expected_q1 = (e(-3) + e(-5)) / (e(-3) + e(-5) + e(-2) + e(-4))
    expected_q2 = e(-1) / (e(-1) + e(-4) + e(-6))
    np.testing.assert_allclose(mc2, [expected_q1, expected_q2], rtol=1e-12)


def test_uniform_shift_zero_is_the_unedited_model() -> None:
    rng = np.random.default_rng(0)
    unedited = rng.normal(-5.0, 2.0, size=TOKENS.size)
    shifted = uniform_shift_scores(unedited, TOKENS, 0.0, LAYOUT)
    base = mc_from_logprobs(unedited, LAYOUT)
    np.testing.assert_array_equal(shifted[0], base[0])
    np.testing.assert_array_equal(shifted[1], base[1])


def test_uniform_shift_by_hand() -> None:
    unedited = np.array([-1.0, -1.0, -2.0, -1.5, -0.5, -3.0, -3.0, -2.0, -2.5])
    mc1, mc2 = uniform_shift_scores(unedited, TOKENS, -0.25, LAYOUT)
    moved = unedited - 0.25 * TOKENS
    expected = mc_from_logprobs(moved, LAYOUT)
    np.testing.assert_array_equal(mc1, expected[0])
    np.testing.assert_allclose(mc2, expected[1], rtol=1e-12)
    # q1: best -1.75 vs false -2.0, -1.5 -> MC1 0; q2: best -3.25 vs -3.0, -4.0 -> MC1 0
    np.testing.assert_array_equal(mc1, [0.0, 0.0])


def test_large_negative_shift_tends_to_the_length_only_mc1() -> None:
    rng = np.random.default_rng(1)
    unedited = rng.normal(-5.0, 2.0, size=TOKENS.size)
    length_mc1, _ = length_only_scores(TOKENS, LAYOUT)
    # 100 nats per token outweighs any spread of the unedited scores (|noise| << 100)
    mc1, mc2 = uniform_shift_scores(unedited, TOKENS, -100.0, LAYOUT)
    np.testing.assert_array_equal(mc1, length_mc1)
    # all mass goes to each question's single shortest answer: false in q1, true in q2
    np.testing.assert_allclose(mc2, [0.0, 1.0], atol=1e-12)
    # and a large positive shift prefers the longest answer: true (5 tokens) in q1, false in q2
    _, mc2_long = uniform_shift_scores(unedited, TOKENS, 100.0, LAYOUT)
    np.testing.assert_allclose(mc2_long, [1.0, 0.0], atol=1e-12)
