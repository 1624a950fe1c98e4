"""fit.json parsed in one place: the ``centred`` key, defaults of old records, one-line errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sea_dist.errors import ArtifactError
from sea_dist.format.fit_record import CENTRED_KEY, fit_record_from_dict, fit_record_from_json

ATTRS = {
    "model_id": "tiny",
    "architecture": "llama",
    "d_model": 8,
    "n_model_layers": 4,
    "site": "mlp",
    "site_template": None,
}


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema_version": 1,
        "store": {"url": "memory://s", "attrs": dict(ATTRS)},
        "config": {"centre": True, "combine": "average"},
        "layers": [{"layer": 1, "k_pos": 2, "k_neg": 0}, {"layer": 3, "k_pos": 1, "k_neg": 1}],
    }
    record.update(changes)
    return record


def test_centre_is_read_from_the_centred_key() -> None:
    assert CENTRED_KEY == "centred"
    assert fit_record_from_dict(_record(centred=True), "f").centred
    assert not fit_record_from_dict(_record(centred=False), "f").centred


def test_old_records_read_their_defaults() -> None:
    record = fit_record_from_json(json.dumps(_record()).encode(), "f")
    assert not record.centred  # no key: written before centring was recorded
    assert record.combine == "average"  # the config's, when the record has no combine
    assert record.feature_map == {"name": "linear", "scale": 1.0}
    assert record.layer_indices == (1, 3) and record.store_url == "memory://s"
    fields = record.edit_fields()
    assert fields["d_model"] == 8 and fields["site"] == "mlp" and fields["centred"] is False


@pytest.mark.parametrize(
    ("record", "match"),
    [
        (_record(schema_version=2), "f: fit.json schema_version: expected 1, found 2"),
        (_record(store={"url": "x"}), "f: store: expected an object with 'attrs'"),
        (_record(store={"attrs": {**ATTRS, "d_model": "8"}}), "store.attrs.d_model"),
        (_record(layers=[]), "f: layers: expected a non-empty list"),
        (_record(layers=[{"layer": 1, "k_pos": 2}]), "layer, k_pos and k_neg integers"),
        (_record(layers=[{"layer": 4, "k_pos": 1, "k_neg": 1}]), r"distinct indices in \[0, 4\)"),
        ([], "f: fit.json: expected a JSON object"),
    ],
)
def test_malformed_records_are_refused_in_one_line(record: Any, match: str) -> None:
    with pytest.raises(ArtifactError, match=match) as error:
        fit_record_from_dict(record, "f")
    assert "\n" not in str(error.value)


def test_invalid_json_is_refused() -> None:
    with pytest.raises(ArtifactError, match="f: fit.json: expected valid JSON"):
        fit_record_from_json(b"{not json", "f")
