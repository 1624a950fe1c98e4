"""Search spaces from YAML: presets, products, names, and refusals before any work."""

from __future__ import annotations

import pytest

from sea_dist.errors import ConfigError
from sea_dist.studies.space import (
    MAX_SETTINGS,
    PRESETS,
    Setting,
    parse_space,
    select,
    variants_of,
)


def test_presets_are_the_papers_placements() -> None:
    paper = PRESETS["paper-truthfulqa"]
    energies = (paper.positive_energy, paper.negative_energy)
    assert (paper.site, paper.centre, paper.layers, *energies) == (
        "mlp",
        False,
        "last-66%",
        0.998,
        0.998,
    )
    bbq = PRESETS["paper-bbq"]
    assert (bbq.feature_map, bbq.layers, bbq.positive_energy) == ("sqexp", "last-2", 0.9999)
    assert parse_space(["paper-truthfulqa"]) == [paper]


def test_a_mapping_expands_as_a_product_with_unique_names() -> None:
    settings = parse_space(
        [{"site": ["residual", "mlp"], "layers": ["last-2", "last-4"], "alpha": [0.1, 0.5]}]
    )
    assert len(settings) == 8
    assert len({s.name for s in settings}) == 8
    assert {s.alpha for s in settings} == {0.1, 0.5}


def test_k_sets_both_thresholds_and_a_list_of_ints_is_one_layer_value() -> None:
    (setting,) = parse_space([{"energy": 0.9, "layers": [3, 5], "name": "mine"}])
    assert (setting.positive_energy, setting.negative_energy, setting.layers, setting.name) == (
        0.9,
        0.9,
        (3, 5),
        "mine",
    )
    two = parse_space([{"layers": [[1, 2], [3]]}])
    assert [s.layers for s in two] == [(1, 2), (3,)]


def test_a_preset_with_varied_axes_keeps_the_rest() -> None:
    settings = parse_space([{"preset": "paper-truthfulqa", "alpha": [0.25, 0.5]}])
    assert [s.alpha for s in settings] == [0.25, 0.5]
    assert all(s.site == "mlp" and s.positive_energy == 0.998 for s in settings)
    assert settings[0].name.startswith("paper-truthfulqa")


@pytest.mark.parametrize(
    ("space", "fragment"),
    [
        ([], "non-empty"),
        (["no-such-preset"], "preset"),
        ([{"sight": "mlp"}], "axes among"),
        ([{"alpha": 0.0}], "alpha"),
        ([{"alpha": 1.5}], "alpha"),
        ([{"energy": 0.0}], "positive_energy"),
        ([{"positions": "prompt"}], "positions"),
        ([{"layers": "last-two"}], "layers"),
        ([{"site": "embed"}], "site"),
        ([{"alpha": []}], "at least one value"),
        ([{"name": "a", "alpha": 0.1}, {"name": "a", "alpha": 0.2}], "distinct"),
        ([42], "preset name or a mapping"),
    ],
)
def test_bad_spaces_are_refused(space: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_space(space)


def test_a_huge_product_is_refused() -> None:
    alphas = [round(0.001 * i, 3) for i in range(1, 1000)]
    with pytest.raises(ConfigError, match=str(MAX_SETTINGS)):
        parse_space([{"alpha": alphas, "energy": [0.9, 0.99, 0.999]}])


def test_the_same_setting_listed_twice_is_kept_once() -> None:
    assert len(parse_space(["residual", "residual"])) == 1


def test_select_and_variants() -> None:
    settings = parse_space([{"alpha": [0.1, 0.2]}])
    assert select(settings, [settings[1].name]) == [settings[1]]
    with pytest.raises(ConfigError, match="--settings"):
        select(settings, ["nope"])
    keys = [v.key for v in variants_of(Setting("s"), 3)]
    assert keys == ["s", "s~random0", "s~random1", "s~random2", "s~swapped"]


def test_fit_key_groups_what_shares_a_fit() -> None:
    a, b = parse_space([{"alpha": [0.1, 0.9], "layers": "last-2"}])
    assert a.fit_key == b.fit_key
    assert Setting("x", site="mlp").fit_key != a.fit_key
    assert Setting("t", feature_map="tanh").fit_key.endswith("auto")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"k": 0.9}, {"energy": 0.9}),
        ({"k_pos": 0.9, "k_neg": 0.95}, {"positive_energy": 0.9, "negative_energy": 0.95}),
    ],
)
def test_deprecated_energy_axes_still_read_with_a_warning(
    old: dict[str, float], new: dict[str, float], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING"):
        (from_old,) = parse_space([{"name": "s", **old}])
    assert from_old == parse_space([{"name": "s", **new}])[0]
    assert "deprecated" in caplog.text and "chosen ranks" in caplog.text


def test_an_old_and_a_new_name_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="found both"):
        parse_space([{"k": 0.9, "energy": 0.9}])
