"""A populated workspace for the bad-input tests: registry, activation stores, fit outputs, inputs.

Layout below the root::

    registry/           names ``demo`` (versions 1, 2; alias prod -> 1) and ``other`` (1);
                        listing indexes already written, so a read-only query writes nothing
    stores/complete.zarr, stores/partial.zarr (one of two shards done)
    fits/good, fits/bad-json (fit.json is not JSON), fits/pickle (a pickle in place of
                        projections.safetensors, whose unpickling would create ``CANARY``)
    inputs/             the corpus files (reliability_corpus.FILES)
    cwd/                the working directory of the commands (default paths land here)
    CANARY              never exists: only unpickling the planted pickle would create it
"""

from __future__ import annotations

import pathlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from reliability_corpus import FILES
from synthetic_fit import write_synthetic_fit

from sea_dist.registry.filesystem import Registry
from sea_dist.store import ACTIVATION_ARRAYS, ActivationStore, StoreSpec


class Tripwire:
    """Unpickling this touches ``path``: the observable effect of a pickle load."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (pathlib.Path.touch, (self.path,))


def tripwire_pickle(canary: Path) -> bytes:
    """A pickle whose loading creates ``canary`` (proves a loader never unpickles)."""
    return pickle.dumps({"layers.1.U_pos": Tripwire(canary)}, protocol=4)


def store_spec(n_rows: int = 8, rows_per_shard: int = 4, d_model: int = 8) -> StoreSpec:
    """The identity of a small synthetic activation store (2 layers)."""
    return StoreSpec(
        model_id="tiny",
        model_revision="main",
        architecture="llama",
        d_model=d_model,
        n_model_layers=2,
        tokenizer_fingerprint="tok",
        site="residual",
        site_template=None,
        layers=(0, 1),
        token="last",
        neutral="prompt",
        max_new_tokens=4,
        demonstrations_fingerprint="demos",
        n_rows=n_rows,
        rows_per_shard=rows_per_shard,
    )


def shard_payload(
    spec: StoreSpec, shard: int, seed: int = 0
) -> tuple[dict[str, np.ndarray], list[str], list[str], np.ndarray]:
    """Deterministic ``write_shard`` arguments of one shard (same seed, same bytes)."""
    start, stop = spec.shard_rows(shard)
    rows = stop - start
    rng = np.random.default_rng([seed, shard])
    shape = (rows, len(spec.layers), spec.d_model)
    activations = {name: rng.standard_normal(shape).astype("float32") for name in ACTIVATION_ARRAYS}
    ids = [f"row-{i}" for i in range(start, stop)]
    return activations, ids, [f"gen {i}" for i in range(start, stop)], np.arange(rows) + 3


def write_store(url: str, spec: StoreSpec, shards: list[int], seed: int = 0) -> ActivationStore:
    """Create the store and write ``shards`` of it."""
    store = ActivationStore.create(url, spec)
    for shard in shards:
        store.write_shard(shard, *shard_payload(spec, shard, seed))
    return store


@dataclass(frozen=True)
class Workspace:
    """Paths of a built workspace."""

    root: Path

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def canary(self) -> Path:
        return self.root / "CANARY"

    @property
    def cwd(self) -> Path:
        return self.root / "cwd"

    def expand(self, argv: tuple[str, ...]) -> list[str]:
        """Arguments with ``{ws}`` replaced by the workspace root."""
        return [arg.replace("{ws}", str(self.root)) for arg in argv]


def build_workspace(root: Path) -> Workspace:
    """Create the workspace described in the module docstring under ``root``."""
    ws = Workspace(root)
    for relative, data in FILES.items():
        path = root / "inputs" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    fits = root / "fits"
    write_synthetic_fit(fits / "good", seed=0)
    bad = write_synthetic_fit(fits / "bad-json", seed=1)
    (bad / "fit.json").write_text('{"schema_version": 1, "store": ', encoding="utf-8")
    planted = write_synthetic_fit(fits / "pickle", seed=2)
    (planted / "projections.safetensors").write_bytes(tripwire_pickle(ws.canary))
    registry = Registry(str(ws.registry))
    registry.publish(fits / "good", "demo", created_at="2026-01-01T00:00:00+00:00")
    registry.publish(
        write_synthetic_fit(root / "scratch" / "v2", seed=3),
        "demo",
        created_at="2026-02-01T00:00:00+00:00",
    )
    registry.publish(write_synthetic_fit(root / "scratch" / "o1", seed=4), "other")
    registry.set_alias("demo", "prod", 1)
    for name in registry.names():
        registry.versions(name)  # write the listing caches now, not during a refused query
    spec = store_spec()
    write_store(str(root / "stores" / "complete.zarr"), spec, [0, 1])
    write_store(str(root / "stores" / "partial.zarr"), spec, [0])
    (root / "out").mkdir()
    ws.cwd.mkdir()
    return ws
