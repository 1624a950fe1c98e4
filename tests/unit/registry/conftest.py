"""Fixtures for the artifact tests: synthetic fit outputs and an empty local registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from synthetic_fit import write_synthetic_fit

from sea_dist.registry.filesystem import Registry

FitFactory = Callable[..., Path]


@pytest.fixture
def make_fit(tmp_path: Path) -> FitFactory:
    """``make_fit(seed=..., **options)`` writes a synthetic fit output and returns its folder."""
    counter = iter(range(10_000))

    def build(**options: Any) -> Path:
        return write_synthetic_fit(tmp_path / f"fit-{next(counter)}", **options)

    return build


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(str(tmp_path / "registry"))


RecordFactory = Callable[..., Any]


@pytest.fixture
def make_record() -> RecordFactory:
    """``make_record(effect=0.05, effect_lo=0.01, **metrics)``: an EvaluationRecord.

    The defaults pass the gate (every damage metric measured and inside the default budget, the
    effect's interval above 0); override a metric (``perplexity_ratio=2.0``) to fail it.
    """
    from sea_dist.format.recipe import EvaluationRecord

    def build(effect: float | None = 0.05, effect_lo: float | None = 0.01, **metrics: Any) -> Any:
        values: dict[str, float | None] = {
            "effect": effect,
            "effect_lo": effect_lo,
            "perplexity_ratio": 1.01,
            "builtin_accuracy_delta": 0.0,
            "logprob_per_token_delta": -0.01,
            "generation_delta": 0.0,
        }
        values.update(metrics)
        return EvaluationRecord(effect="truthfulqa_mc2_margin", metrics=values, source="test")

    return build
