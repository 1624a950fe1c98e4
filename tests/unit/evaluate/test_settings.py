"""The study's grid: selecting settings, each setting's variants and which settings share a fit."""

from __future__ import annotations

import pytest

from sea_dist.errors import ConfigError
from sea_dist.evaluate.settings import (
    DEFAULT_GRID,
    Setting,
    Variant,
    select_settings,
    variants_of,
)

NAMES = [setting.name for setting in DEFAULT_GRID]


def test_grid_names_are_unique_and_start_with_the_default() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert DEFAULT_GRID[0] == Setting("residual", description=DEFAULT_GRID[0].description)
    assert all(setting.description for setting in DEFAULT_GRID)
    # grid entries only use values the edit accepts
    assert {s.site for s in DEFAULT_GRID} <= {"residual", "mlp"}
    assert {s.combine for s in DEFAULT_GRID} <= {"l2", "average"}
    assert {s.feature_map for s in DEFAULT_GRID} <= {"linear", "tanh", "elu", "sqexp"}


@pytest.mark.parametrize("names", [None, []])
def test_no_names_select_the_whole_grid(names: list[str] | None) -> None:
    assert select_settings(names) == list(DEFAULT_GRID)


def test_subset_comes_back_in_grid_order() -> None:
    chosen = select_settings(["mlp-last10", "residual", "mlp"])
    assert [s.name for s in chosen] == ["residual", "mlp", "mlp-last10"]
    assert select_settings(["mlp", "mlp"]) == [DEFAULT_GRID[NAMES.index("mlp")]]


def test_unknown_names_raise_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        select_settings(["residual", "nope", "also-nope"])
    message = str(error.value)
    assert "\n" not in message
    assert "--settings" in message
    assert "nope, also-nope" in message
    assert "residual" in message  # the known names are listed


def test_custom_grid() -> None:
    grid = (Setting("a"), Setting("b", site="mlp"))
    assert select_settings(["b"], grid) == [grid[1]]
    with pytest.raises(ConfigError):
        select_settings(["residual"], grid)


def test_variants_order_and_keys() -> None:
    setting = Setting("residual")
    variants = variants_of(setting, 3)
    assert [v.key for v in variants] == [
        "residual",
        "residual~random0",
        "residual~random1",
        "residual~random2",
        "residual~swapped",
    ]
    assert [(v.control, v.seed) for v in variants] == [
        (None, 0),
        ("random", 0),
        ("random", 1),
        ("random", 2),
        ("swapped", 0),
    ]
    assert all(v.setting is setting for v in variants)
    assert [v.key for v in variants_of(setting, 0)] == ["residual", "residual~swapped"]


def test_variant_keys_are_unique_over_the_grid() -> None:
    keys = [v.key for s in DEFAULT_GRID for v in variants_of(s, 3)]
    assert len(keys) == len(set(keys)) == len(DEFAULT_GRID) * 5
    assert Variant(Setting("x"), "random", 7).key == "x~random7"


def test_fit_key_ignores_what_only_the_edit_uses() -> None:
    base = Setting("a")
    same = [
        Setting("b", combine="average"),
        Setting("c", layers="last-4"),
        Setting("d", skip_first_token=True),
        Setting("e", combine="average", layers="first-2", skip_first_token=True, description="x"),
    ]
    assert {s.fit_key for s in same} == {base.fit_key}
    assert base.fit_key == "residual-centred-linear"


def test_fit_key_changes_with_what_the_fit_uses() -> None:
    keys = {
        Setting("a").fit_key,
        Setting("b", site="mlp").fit_key,
        Setting("c", centre=False).fit_key,
        Setting("d", feature_map="tanh").fit_key,
        Setting("e", feature_map="tanh", feature_map_scale=2.0).fit_key,
        Setting("f", feature_map="elu").fit_key,
    }
    assert len(keys) == 6
    assert Setting("d", feature_map="tanh").fit_key == "residual-centred-tanh-auto"
    assert Setting("e", feature_map="tanh", feature_map_scale=2.0).fit_key.endswith("-2")
    # a scale means nothing to the linear map and does not split its fit
    assert Setting("g", feature_map_scale=3.0).fit_key == Setting("a").fit_key


def test_default_grid_shares_fits() -> None:
    by_key: dict[str, list[str]] = {}
    for setting in DEFAULT_GRID:
        by_key.setdefault(setting.fit_key, []).append(setting.name)
    assert by_key["residual-centred-linear"] == [
        "residual",
        "residual-average",
        "residual-last4",
        "residual-last10",
        "residual-last20",
        "residual-skipfirst",
    ]
    assert by_key["mlp-centred-linear"] == ["mlp", "mlp-last10"]
    assert by_key["residual-centred-tanh-auto"] == ["residual-tanh", "residual-tanh-skipfirst"]
