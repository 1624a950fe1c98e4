"""Choosing a setting on validation data: successive halving, then the full damage check.

Settings inside the measured part of the budget rank first, each group by validation margin
(SEA minus its best control). Each round keeps the best ``1/eta`` of the settings and scores
``eta`` times as many validation questions, until the questions are used up, ``finalists``
remain, or the time budget says stop; the finalists then get the full check (built-in accuracy,
greedy answer rate) and the best one inside the whole budget is chosen. Nothing here reads the
test fold.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

from sea_dist.studies.options import TuneOptions
from sea_dist.studies.questions import QuestionSet
from sea_dist.studies.space import Setting

log = logging.getLogger(__name__)


class SearchRun(Protocol):
    """What the search needs of a tuning run (:class:`sea_dist.studies.tune.Tune` is one);
    a protocol, so this module does not import the run that calls it."""

    options: TuneOptions
    validation: QuestionSet
    progress: bool
    search_started: float

    def fit(self, setting: Setting) -> Any: ...

    def compare(
        self, questions: QuestionSet, setting: Setting, n_chunks: int, intervals: bool
    ) -> dict[str, Any]: ...

    def damage(self, setting: Setting, full: bool) -> dict[str, float]: ...

    def budget_failures(self, metrics: dict[str, Any], full: bool) -> list[str]: ...

    def search_minutes(self) -> float: ...


def successive_halving(
    tune: SearchRun, space: Sequence[Setting]
) -> tuple[Setting | None, list[dict[str, Any]]]:
    """Successive halving on the validation part, then the full check of the finalists.

    Returns:
        The chosen setting (None when no setting stays inside the whole budget) and one
        record per setting tried (its last round's validation metrics).
    """
    from tqdm.auto import tqdm

    options = tune.options
    for setting in space:  # record and fit first: the time budget is the search's
        tune.fit(setting)
    tune.search_started = time.perf_counter()
    total_chunks = len(tune.validation.chunks)
    n_chunks = min(options.first_round_chunks, total_chunks)
    alive = list(space)
    trials: dict[str, dict[str, Any]] = {}
    round_index = 0
    seconds_per_unit: float | None = None  # per setting x chunk
    done_chunks: dict[str, int] = {}
    while True:
        started = time.perf_counter()
        units = 0
        bar = tqdm(
            alive, desc=f"round {round_index + 1}", unit="setting", disable=not tune.progress
        )
        for setting in bar:
            bar.set_postfix_str(setting.name)
            metrics = tune.compare(tune.validation, setting, n_chunks, intervals=False)
            metrics.update(tune.damage(setting, full=False))
            metrics["round"] = round_index + 1
            metrics["budget_failures"] = tune.budget_failures(metrics, full=False)
            trials[setting.name] = {"setting": setting, **metrics}
            units += n_chunks - done_chunks.get(setting.name, 0)
            done_chunks[setting.name] = n_chunks
        elapsed = time.perf_counter() - started
        if units:
            seconds_per_unit = elapsed / units
        alive = rank(alive, trials)
        log.info(
            "round %d: %d settings on %d questions; leader %s (margin %+.4f)",
            round_index + 1,
            len(alive),
            tune.validation.n_questions(n_chunks),
            alive[0].name,
            trials[alive[0].name]["margin"],
        )
        if n_chunks >= total_chunks or len(alive) <= options.finalists:
            break
        keep = max(options.finalists, math.ceil(len(alive) / options.eta))
        next_chunks = min(total_chunks, n_chunks * options.eta)
        if options.budget_minutes is not None and seconds_per_unit is not None:
            cost = keep * (next_chunks - n_chunks) * seconds_per_unit / 60.0
            # keep a third of the budget for the finalists' checks and the test fold
            if tune.search_minutes() + cost > options.budget_minutes * 2 / 3:
                log.info("time budget: stopping the search after round %d", round_index + 1)
                break
        alive = alive[:keep]
        n_chunks = next_chunks
        round_index += 1

    # survivors (scored on the most questions) first, then the eliminated ones
    ranked = alive + [s for s in rank(list(space), trials) if s not in alive]
    chosen = None
    for setting in ranked[: max(options.finalists, 1) * 2]:
        record = trials[setting.name]
        if record["budget_failures"]:
            continue
        record.update(tune.damage(setting, full=True))
        record["budget_failures"] = tune.budget_failures(record, full=True)
        record["finalist"] = True
        if not record["budget_failures"]:
            chosen = setting
            break
    if chosen is not None:
        rounds = done_chunks[chosen.name]
        record = trials[chosen.name]
        record.update(tune.compare(tune.validation, chosen, rounds, intervals=True))
        record["chosen"] = True
    return chosen, [trials[s.name] for s in space if s.name in trials]


def rank(settings: Sequence[Setting], trials: dict[str, dict[str, Any]]) -> list[Setting]:
    """Settings inside the measured budget first, each group by validation margin, descending."""

    def order(setting: Setting) -> tuple[int, float]:
        record = trials.get(setting.name)
        if record is None:
            return (2, 0.0)
        return (1 if record["budget_failures"] else 0, -float(record["margin"]))

    return sorted(settings, key=order)
