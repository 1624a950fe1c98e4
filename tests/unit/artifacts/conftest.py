"""Fixtures for the artifact tests: synthetic fit outputs and an empty local registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sea_dist.artifacts.registry import Registry
from sea_dist.artifacts.synthetic import write_synthetic_fit

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
