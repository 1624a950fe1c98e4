"""Fixtures of the fit tests (helpers live in fit_reference.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fit_reference import planted_activations, write_store


@dataclass
class SyntheticStore:
    url: str
    data: dict[str, np.ndarray]
    layers: tuple[int, ...]


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., SyntheticStore]:
    """Factory: ``make_store(n, d, layers=(1, 3), rows_per_shard=16, seed=0, **planted)``."""
    counter = iter(range(1000))

    def make(
        n: int,
        d: int,
        layers: tuple[int, ...] = (1, 3),
        rows_per_shard: int = 16,
        seed: int = 0,
        complete: bool = True,
        **planted: float,
    ) -> SyntheticStore:
        rng = np.random.default_rng(seed)
        data = planted_activations(rng, n, len(layers), d, **planted)  # type: ignore[arg-type]
        url = str(tmp_path / f"store-{next(counter)}.zarr")
        write_store(url, data, layers, rows_per_shard, complete)
        return SyntheticStore(url, data, layers)

    return make
