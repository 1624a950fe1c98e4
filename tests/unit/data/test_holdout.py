"""data.holdout: a share of the demonstrations kept out of the fit, chosen by a hash of the id."""

from __future__ import annotations

import math

import pytest

from sea_dist.config import DataConfig, SeaConfig, config_from_dict
from sea_dist.data import (
    Demonstration,
    load_builtin_demonstrations,
    load_demonstrations,
    load_heldout_demonstrations,
    split_holdout,
)
from sea_dist.errors import ConfigError
from sea_dist.evaluate.runner import builtin_questions


def _demos(n: int) -> list[Demonstration]:
    return [Demonstration(id=f"q{i}", prompt=f"p{i}", positive="a", negative="b") for i in range(n)]


def test_split_is_disjoint_complete_sized_and_ordered() -> None:
    demos = _demos(101)
    fit, held = split_holdout(demos, 0.2)
    assert len(held) == round(0.2 * 101) and len(fit) + len(held) == 101
    assert {d.id for d in fit}.isdisjoint(d.id for d in held)
    order = [d.id for d in demos]
    assert [d.id for d in fit] == [i for i in order if i in {d.id for d in fit}]
    assert split_holdout(demos, 0.0) == (demos, [])


def test_split_is_stable_when_rows_are_reordered_or_added() -> None:
    demos = _demos(200)
    _, held = split_holdout(demos, 0.25)
    _, reordered = split_holdout(list(reversed(demos)), 0.25)
    assert {d.id for d in held} == {d.id for d in reordered}
    # the held-out rows are those whose id hashes lowest: adding rows never moves a fitted row
    # into the held-out part except by displacing the highest-ranked held-out ones
    _, grown = split_holdout(demos + _demos(210)[200:], 0.25)
    assert len({d.id for d in held} - {d.id for d in grown}) <= 3


def test_loaders_return_the_two_parts_of_the_builtin_set() -> None:
    config = DataConfig(holdout=0.2)
    fit, held = load_demonstrations(config), load_heldout_demonstrations(config)
    every = load_builtin_demonstrations()
    assert sorted(d.id for d in fit + held) == sorted(d.id for d in every)
    assert len(held) == round(0.2 * len(every))
    assert load_heldout_demonstrations(DataConfig()) == []
    limited = DataConfig(holdout=0.5, limit=10)  # the limit applies first
    assert len(load_demonstrations(limited)) + len(load_heldout_demonstrations(limited)) == 10


@pytest.mark.parametrize(
    ("value", "expect"),
    [
        (-0.1, "a share in [0, 0.5]"),
        (0.51, "a share in [0, 0.5]"),
        (1.0, "a share in [0, 0.5]"),
        (math.nan, "a finite number"),
        (math.inf, "a finite number"),
    ],
)
def test_holdout_outside_its_range_is_refused(value: float, expect: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"data": {"holdout": value}}, SeaConfig)
    assert f"data.holdout: expected {expect}" in str(raised.value)


def test_builtin_evaluation_scores_the_held_out_part() -> None:
    notes: list[str] = []
    config = config_from_dict({"data": {"holdout": 0.2}}, SeaConfig)
    questions = builtin_questions(config, notes)
    assert {d.id for d in questions} == {d.id for d in load_heldout_demonstrations(config.data)}
    assert "held out" in notes[0]
    notes.clear()
    assert len(builtin_questions(SeaConfig(), notes)) == len(load_builtin_demonstrations())
    assert "in-sample" in notes[0] and "data.holdout" in notes[0]
    other = config_from_dict({"data": {"source": "jsonl", "path": "x.jsonl"}}, SeaConfig)
    notes.clear()
    assert len(builtin_questions(other, notes)) == len(load_builtin_demonstrations())
    assert notes == []  # not fitted on builtin: nothing to say
