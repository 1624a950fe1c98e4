"""The collector without Ray: loads a saved tiny model, records a shard, writes it to the store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sea_dist.collect.actor import ShardCollector
from sea_dist.collect.driver import store_spec
from sea_dist.collect.record import RecordOptions, record_demonstrations
from sea_dist.config import SeaConfig, config_from_dict
from sea_dist.data import load_demonstrations, make_template
from sea_dist.errors import StoreError
from sea_dist.layers import site_modules
from sea_dist.models import load_model
from sea_dist.store import ActivationStore


def _config(model_dir: Path, store: Path, **collect: object) -> SeaConfig:
    return config_from_dict(
        {
            "model": {"id": str(model_dir)},
            "data": {"source": "builtin", "limit": 6},
            "collect": {"layers": [0, 2], "rows_per_shard": 4, "neutral": "prompt", **collect},
            "store": {"url": str(store)},
        }
    )


def test_shard_is_written_with_marker_and_matches_direct_recording(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = _config(tiny_model_dir, tmp_path / "store.zarr")
    demos = load_demonstrations(config.data)
    collector = ShardCollector(config, demos, str(tmp_path / "store.zarr"))
    info = collector.setup()
    assert info.layers == (0, 2) and info.n_rows == 6 and info.d_model == 32
    store = ActivationStore.create(str(tmp_path / "store.zarr"), store_spec(config, info))
    assert store.pending_shards() == [0, 1]

    result = collector.run_shard(1)
    assert (result.shard, result.rows) == (1, 2)
    assert store.done_shards() == {1}

    loaded = load_model(config.model)
    sites = site_modules(loaded.model, (0, 2), "residual")
    template = make_template(config.data, loaded.tokenizer)
    direct = record_demonstrations(
        loaded.model, loaded.tokenizer, sites, template, demos[4:6], RecordOptions(neutral="prompt")
    )
    for name, array in direct.arrays().items():
        np.testing.assert_allclose(store.read(name, slice(4, 6)), array, rtol=1e-5, atol=1e-6)
    assert list(store.read("row_ids", slice(4, 6))) == [d.id for d in demos[4:6]]
    assert int(store.read("n_tokens", slice(4, 6)).sum()) == result.tokens > 0
    # shard 0 untouched
    assert not store.read("positive", slice(0, 4)).any()


def test_collector_refuses_a_store_of_other_demonstrations(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = _config(tiny_model_dir, tmp_path / "store.zarr")
    demos = load_demonstrations(config.data)
    collector = ShardCollector(config, demos, str(tmp_path / "store.zarr"))
    info = collector.setup()
    other = dataclasses.replace(info, demonstrations_fingerprint="0" * 64)
    ActivationStore.create(str(tmp_path / "store.zarr"), store_spec(config, other))
    with pytest.raises(StoreError, match="demonstrations_fingerprint"):
        collector.run_shard(0)
