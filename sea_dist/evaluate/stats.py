"""Statistics of paired per-question scores: bootstrap confidence intervals and length baselines.

Every comparison in the controlled study is paired: the edited model, a control and the unedited
model answer the same questions, so a difference is estimated per question and resampled over
questions (percentile bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sea_dist.errors import DataError, expected_found
from sea_dist.evaluate.truthfulqa import AnswerLayout, mc_from_logprobs


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over questions with a percentile-bootstrap confidence interval.

    Attributes:
        mean: mean difference.
        low: lower bound of the interval.
        high: upper bound.
        n: number of questions.
        level: coverage of the interval (0.95 by default).
    """

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0."""
        return self.low > 0.0 or self.high < 0.0

    def format(self, digits: int = 3) -> str:
        """``+0.012 [+0.004, +0.020]``."""
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Mean of ``a - b`` with a percentile-bootstrap interval over questions (rows).

    Args:
        a, b: ``(n,)`` per-question scores of two systems on the same questions.
        resamples: bootstrap resamples.
        level: interval coverage in (0, 1).
        seed: resampling seed (fixed, so a report is reproducible).

    Raises:
        DataError: shapes differ or there are no questions.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise DataError(
            expected_found("paired scores", "two non-empty (n,) arrays", (a.shape, b.shape))
        )
    if not 0.0 < level < 1.0:
        raise DataError(expected_found("level", "a coverage in (0, 1)", level))
    if resamples < 1:
        raise DataError(expected_found("resamples", "an integer >= 1", resamples))
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # resample in blocks so 10k x 817 indices never sit in memory at once
    block = 1000
    for first in range(0, resamples, block):
        count = min(block, resamples - first)
        index = rng.integers(0, diff.size, size=(count, diff.size))
        means[first : first + count] = diff[index].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return PairedDifference(float(diff.mean()), float(low), float(high), int(diff.size), level)


def mean_logprob_change_per_token(
    edited: np.ndarray, unedited: np.ndarray, n_tokens: np.ndarray
) -> float:
    """Mean change in log-probability per answer token (nats): ``sum(edited - unedited) / tokens``.

    A uniform negative value means the edit lowers every token's probability (damage); MC2 then
    moves toward the shorter answers without any per-question knowledge.
    """
    total = float(np.sum(n_tokens))
    if total <= 0:
        raise DataError(expected_found("answer tokens", "at least one", int(total)))
    return float(np.sum(np.asarray(edited) - np.asarray(unedited)) / total)


def length_only_scores(n_tokens: np.ndarray, layout: AnswerLayout) -> tuple[np.ndarray, np.ndarray]:
    """MC1/MC2 of a scorer that knows only answer lengths (each token costs 1 nat).

    It prefers the shortest answer; where it beats the model, answer length alone carries signal.
    """
    return mc_from_logprobs(-np.asarray(n_tokens, dtype=np.float64), layout)


def uniform_shift_scores(
    unedited: np.ndarray, n_tokens: np.ndarray, shift_per_token: float, layout: AnswerLayout
) -> tuple[np.ndarray, np.ndarray]:
    """MC1/MC2 of the unedited scores moved by ``shift_per_token`` nats on every answer token.

    The null model of an edit that only changes how much probability each token gets: a gain
    that this baseline reproduces is a length effect, not a truthfulness edit.
    """
    shifted = np.asarray(unedited, dtype=np.float64) + shift_per_token * np.asarray(n_tokens)
    return mc_from_logprobs(shifted, layout)
