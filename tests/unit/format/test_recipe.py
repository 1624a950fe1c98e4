"""The recipe and evaluation records: JSON round trips, refusals, and the gate's rule."""

from __future__ import annotations

import math

import pytest

from sea_dist.errors import ArtifactError
from sea_dist.format.recipe import (
    DamageBudget,
    EditRecipe,
    EvaluationRecord,
    gate_failures,
    worse_than,
)

PASSING = {
    "effect": 0.02,
    "effect_lo": 0.005,
    "perplexity_ratio": 1.01,
    "builtin_accuracy_delta": -0.01,
    "logprob_per_token_delta": -0.05,
    "generation_delta": 0.0,
}


def test_recipe_round_trip_keeps_every_field() -> None:
    recipe = EditRecipe(
        layers=(3, 5),
        alpha=0.25,
        positions="generated",
        positive_energy=0.9,
        negative_energy=0.99,
        combine="average",
        site="mlp",
        centred=False,
        feature_map={"name": "tanh", "scale": 2.5},
        name="x",
    )
    assert EditRecipe.from_dict(recipe.to_dict()) == recipe
    assert EditRecipe.from_dict({"layers": "last-66%"}).layers == "last-66%"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"positions": "prompt"}, "positions"),
        ({"positive_energy": 0.0}, "positive_energy"),
        ({"layers": {"a": 1}}, "layers"),
        ({"schema": 99}, "schema"),
        ([], "JSON object"),
    ],
)
def test_bad_recipes_are_refused_with_the_field_named(data: object, fragment: str) -> None:
    with pytest.raises(ArtifactError, match=fragment):
        EditRecipe.from_dict(data)


def test_a_record_inside_the_budget_that_beats_its_control_passes() -> None:
    record = EvaluationRecord("truthfulqa_mc2_margin", PASSING)
    assert gate_failures(record) == []
    again = EvaluationRecord.from_dict(record.to_dict())
    assert again.passed and again.to_dict()["passed"] is True


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"perplexity_ratio": 1.2}, "perplexity_ratio"),
        ({"builtin_accuracy_delta": -0.05}, "builtin_accuracy_delta"),
        ({"logprob_per_token_delta": -0.5}, "logprob_per_token_delta"),
        ({"generation_delta": -0.1}, "generation_delta"),
        ({"effect_lo": -0.001}, "does not beat its best control"),
        ({"effect_lo": 0.0}, "does not beat its best control"),
        ({"perplexity_ratio": None}, "perplexity_ratio not measured"),
        ({"effect_lo": math.nan}, "interval not measured"),
    ],
)
def test_each_failure_is_named(change: dict[str, float | None], fragment: str) -> None:
    record = EvaluationRecord("truthfulqa_mc2_margin", {**PASSING, **change})
    reasons = gate_failures(record)
    assert len(reasons) == 1 and fragment in reasons[0], reasons


def test_no_record_fails_and_the_stored_verdict_is_not_trusted() -> None:
    assert gate_failures(None) and "no evaluation record" in gate_failures(None)[0]
    data = EvaluationRecord("m", {**PASSING, "perplexity_ratio": 9.0}).to_dict()
    data["passed"], data["reasons"] = True, []  # a forged verdict
    assert not EvaluationRecord.from_dict(data).passed


def test_budget_comes_from_the_record() -> None:
    loose = DamageBudget(max_perplexity_ratio=2.0)
    record = EvaluationRecord("m", {**PASSING, "perplexity_ratio": 1.5}, budget=loose)
    assert record.passed
    assert DamageBudget.from_dict(loose.to_dict()) == loose


def test_worse_than_compares_the_same_effect_only() -> None:
    better = EvaluationRecord("m", {**PASSING, "effect": 0.03})
    worse = EvaluationRecord("m", {**PASSING, "effect": 0.01})
    other = EvaluationRecord("other", {**PASSING, "effect": 0.0})
    assert worse_than(worse, better) is not None
    assert worse_than(better, worse) is None
    assert worse_than(other, better) is None
    assert worse_than(better, None) is None


def test_a_partial_check_skips_only_the_missing_metrics() -> None:
    budget = DamageBudget()
    cheap = {"perplexity_ratio": 1.01, "logprob_per_token_delta": -0.5}
    reasons = budget.failures(cheap, require_all=False)
    assert reasons == ["logprob_per_token_delta -0.5 outside the budget (>= -0.1)"]
    assert len(budget.failures(cheap)) == 3  # plus the two unmeasured ones
