"""Shard digests (marker records), attribute checks and the checked reads, piece by piece."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from sea_dist.errors import StoreError
from sea_dist.store import ACTIVATION_ARRAYS, ActivationStore, StoreSpec
from sea_dist.store.integrity import (
    LayerCheck,
    ShardDigest,
    read_checked,
    texts_digest,
    values_digest,
)
from sea_dist.store.spec import attribute_problems

SPEC = StoreSpec(
    model_id="tiny",
    model_revision="r1",
    architecture="llama",
    d_model=4,
    n_model_layers=3,
    tokenizer_fingerprint="tok",
    site="residual",
    site_template=None,
    layers=(0, 2),
    token="last",
    neutral="prompt",
    max_new_tokens=0,
    demonstrations_fingerprint="demo",
    n_rows=6,
    rows_per_shard=4,
)


def payload(shard: int) -> tuple[dict[str, np.ndarray], list[str], list[str], np.ndarray]:
    start, stop = SPEC.shard_rows(shard)
    rng = np.random.default_rng(shard)
    shape = (stop - start, 2, 4)
    acts = {name: rng.normal(size=shape).astype(np.float32) for name in ACTIVATION_ARRAYS}
    return acts, [f"r{i}" for i in range(start, stop)], [""] * (stop - start), np.ones(stop - start)


def test_values_digest_is_the_little_endian_bytes_of_the_stored_dtype() -> None:
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert values_digest(values) == values_digest(values.astype(">f4"))
    assert values_digest(values) != values_digest(values.astype(np.float16))
    assert values_digest(values[:, :2]) == values_digest(np.ascontiguousarray(values[:, :2]))
    assert texts_digest(["a", "b"]) != texts_digest(["ab"])


def test_marker_record_round_trips_and_refuses_another_shard() -> None:
    acts, ids, generated, tokens = payload(1)
    digest = ShardDigest.of(1, 4, acts, ids, generated, tokens)
    text = digest.to_json()
    assert ShardDigest.from_json(text, 1, (4, 6), 2) == digest
    record = json.loads(text)
    assert record["rows"] == [4, 6] and len(record["positive"]) == 2
    for shard, rows, layers, why in [
        (0, (0, 4), 2, "shard/rows"),
        (1, (4, 6), 3, "not 3 digests"),
    ]:
        with pytest.raises(ValueError, match=why):
            ShardDigest.from_json(text, shard, rows, layers)
    for bad, why in [
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        (text.replace("sha256", "md5"), "algorithm"),
        (text.replace(record["n_tokens"], "x" * 64), "not sha256"),
    ]:
        with pytest.raises(ValueError, match=why):
            ShardDigest.from_json(bad, 1, (4, 6), 2)


def test_attribute_problems_lists_every_bad_value() -> None:
    attrs = SPEC.to_attrs()
    assert attribute_problems(attrs) == []
    attrs.update(rows_per_shard=0, d_model="4", token="first", layers=[0, 0])
    problems = attribute_problems(attrs, "s.zarr")
    assert len(problems) == 4 and all(p.startswith("store 's.zarr' attribute") for p in problems)
    with pytest.raises(StoreError, match=r"attribute token: .*\(and 3 more problems\)"):
        StoreSpec.from_attrs(attrs)


def test_restricted_check_keeps_only_the_shards_read() -> None:
    check = LayerCheck("u", 2, 1, 4, {"positive": {0: "a", 1: "b", 2: "c"}})
    assert check.restricted([(4, 8)]).digests == {"positive": {1: "b"}}
    assert check.restricted([(0, 4), (8, 10)]).digests == {"positive": {0: "a", 2: "c"}}


def test_checked_read_returns_the_rows_and_names_a_changed_chunk(tmp_path) -> None:
    store = ActivationStore.create(str(tmp_path / "s.zarr"), SPEC)
    for shard in range(SPEC.n_shards):
        store.write_shard(shard, *payload(shard))
    check = store.layer_checks()[2]
    array = store.array("positive")
    got = read_checked(array, "positive", check, 0, 6)
    np.testing.assert_array_equal(got, store.read("positive")[:, 1])
    array[5, 1, 0] = 1e3
    with pytest.raises(StoreError, match=r"shard 1 positive layer 2 \(chunk positive/c/1/1/0\)"):
        read_checked(array, "positive", check, 0, 6)
    unchecked = dataclasses.replace(check, digests={})
    assert read_checked(array, "positive", unchecked, 0, 6)[5, 0] == np.float32(1e3)
