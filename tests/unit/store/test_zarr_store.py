"""Activation store layout, completion markers, resume identity checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import zarr

from sea_dist.errors import StoreError
from sea_dist.store import ACTIVATION_ARRAYS, ActivationStore, StoreSpec


def make_spec(**changes: object) -> StoreSpec:
    spec = StoreSpec(
        model_id="tiny",
        model_revision="r1",
        architecture="llama",
        d_model=8,
        n_model_layers=4,
        tokenizer_fingerprint="tok",
        site="residual",
        site_template=None,
        layers=(1, 3),
        token="last",
        neutral="prompt",
        max_new_tokens=4,
        demonstrations_fingerprint="demo",
        n_rows=10,
        rows_per_shard=4,
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def shard_data(store: ActivationStore, shard: int, seed: int = 0) -> dict[str, np.ndarray]:
    start, stop = store.spec.shard_rows(shard)
    rng = np.random.default_rng(seed + shard)
    shape = (stop - start, len(store.spec.layers), store.spec.d_model)
    return {name: rng.normal(size=shape).astype(np.float32) for name in ACTIVATION_ARRAYS}


def write(store: ActivationStore, shard: int) -> dict[str, np.ndarray]:
    start, stop = store.spec.shard_rows(shard)
    data = shard_data(store, shard)
    ids = [f"row-{i}" for i in range(start, stop)]
    store.write_shard(shard, data, ids, ["gen"] * (stop - start), np.arange(stop - start))
    return data


def test_layout_matches_the_design(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    store = ActivationStore.create(url, make_spec())
    assert store.spec.n_shards == 3
    assert [store.spec.shard_rows(s) for s in range(3)] == [(0, 4), (4, 8), (8, 10)]
    group = zarr.open_group(url, mode="r")
    for name in ACTIVATION_ARRAYS:
        assert group[name].shape == (10, 2, 8)
        assert group[name].chunks == (4, 1, 8)
        assert group[name].dtype == np.float32
    assert group["shard_done"].chunks == (1,)
    attrs = dict(group.attrs)
    assert attrs["schema_version"] == 1 and attrs["layers"] == [1, 3] and "created_at" in attrs


def test_marker_written_after_data_and_pending_shards(tmp_path: Path) -> None:
    store = ActivationStore.create(str(tmp_path / "s.zarr"), make_spec())
    assert store.pending_shards() == [0, 1, 2]
    expected = write(store, 2)
    assert store.pending_shards() == [0, 1] and not store.is_complete
    with pytest.raises(StoreError, match="expected all 3 shards done, found 2 pending"):
        store.require_complete()
    reopened = ActivationStore.open(store.url)
    np.testing.assert_array_equal(reopened.read("positive", slice(8, 10)), expected["positive"])
    assert list(reopened.read("row_ids", slice(8, 10))) == ["row-8", "row-9"]
    for shard in (0, 1):
        write(store, shard)
    assert store.is_complete
    store.require_complete()


def test_resume_same_spec_keeps_data(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    store = ActivationStore.create(url, make_spec())
    data = write(store, 0)
    resumed = ActivationStore.create(url, make_spec())
    assert resumed.pending_shards() == [1, 2]
    np.testing.assert_array_equal(resumed.read("neutral", slice(0, 4)), data["neutral"])


@pytest.mark.parametrize(
    "change",
    [
        {"model_id": "other"},
        {"model_revision": "r2"},
        {"layers": (1, 2)},
        {"site": "mlp"},
        {"demonstrations_fingerprint": "changed"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_mismatched_store_refused_and_untouched(tmp_path: Path, change: dict) -> None:
    url = str(tmp_path / "s.zarr")
    store = ActivationStore.create(url, make_spec())
    data = write(store, 0)
    key = next(iter(change))
    with pytest.raises(StoreError, match=f"{key}: expected .* --overwrite"):
        ActivationStore.create(url, make_spec(**change))
    again = ActivationStore.open(url)
    assert again.done_shards() == {0}
    np.testing.assert_array_equal(again.read("negative", slice(0, 4)), data["negative"])


def test_overwrite_replaces(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    write(ActivationStore.create(url, make_spec()), 0)
    fresh = ActivationStore.create(url, make_spec(site="mlp"), overwrite=True)
    assert fresh.pending_shards() == [0, 1, 2] and fresh.spec.site == "mlp"


def test_bad_shapes_and_indices_refused(tmp_path: Path) -> None:
    store = ActivationStore.create(str(tmp_path / "s.zarr"), make_spec())
    bad = {name: np.zeros((4, 2, 7), np.float32) for name in ACTIVATION_ARRAYS}
    with pytest.raises(StoreError, match=r"expected shape \(4, 2, 8\)"):
        store.write_shard(0, bad, ["a"] * 4, [""] * 4, np.zeros(4))
    assert store.pending_shards() == [0, 1, 2]
    with pytest.raises(StoreError, match="shard: expected 0..2"):
        store.spec.shard_rows(3)


def test_open_missing_and_foreign(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="run 'sea-dist collect' first"):
        ActivationStore.open(str(tmp_path / "missing.zarr"))
    foreign = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w")
    foreign.attrs["schema_version"] = 1
    with pytest.raises(StoreError, match="not a sea-dist activation store"):
        ActivationStore.open(str(tmp_path / "foreign.zarr"))
    zarr.open_group(str(tmp_path / "v9.zarr"), mode="w").attrs["schema_version"] = 9
    with pytest.raises(StoreError, match="schema_version: expected 1, found 9"):
        ActivationStore.open(str(tmp_path / "v9.zarr"))


@pytest.mark.parametrize("codec", ["zstd", "blosc", "gzip", "none"])
def test_codecs_and_float16(tmp_path: Path, codec: str) -> None:
    store = ActivationStore.create(
        str(tmp_path / "s.zarr"), make_spec(codec=codec, dtype="float16")
    )
    data = write(store, 1)
    got = ActivationStore.open(store.url).read("positive", slice(4, 8))
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, data["positive"], rtol=1e-3, atol=1e-3)
