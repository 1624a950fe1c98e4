"""The two-fold study's grid: read from YAML (``twofold:``), the built-in default, selecting
settings, each setting's variants and which settings share a fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sea_dist.cli import main
from sea_dist.config import SeaConfig
from sea_dist.errors import ConfigError
from sea_dist.studies.options import load_study_config
from sea_dist.studies.space import PRESETS, Setting, Variant, select, variants_of
from sea_dist.studies.twofold_options import (
    DEFAULT_GRID,
    TwofoldOptions,
    default_grid,
    twofold_options_from_dict,
)

REPO = Path(__file__).resolve().parents[3]
NAMES = [setting.name for setting in DEFAULT_GRID]
RUN_CONFIG = {"model": {"id": "some-model"}, "evaluate": {"batch_size": 4}}


def _write(tmp_path: Path, twofold: object = None, **sections: object) -> Path:
    document = {**RUN_CONFIG, **sections}
    if twofold is not None:
        document["twofold"] = twofold
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_grid_names_are_unique_and_start_with_the_default() -> None:
    assert NAMES == [
        "residual",
        "mlp",
        "residual-uncentred",
        "mlp-uncentred",
        "residual-average",
        "residual-last4",
        "residual-last10",
        "residual-last20",
        "residual-tanh",
        "residual-tanh-skipfirst",
        "residual-skipfirst",
        "mlp-last10",
    ]
    assert DEFAULT_GRID[0] == Setting("residual", description=DEFAULT_GRID[0].description)
    assert all(setting.description for setting in DEFAULT_GRID)
    # the grid fits and applies at K = 0.99, full strength, as before it moved to YAML
    strengths = {(s.positive_energy, s.negative_energy, s.alpha) for s in DEFAULT_GRID}
    assert strengths == {(0.99, 0.99, 1.0)}
    assert {s.site for s in DEFAULT_GRID} <= {"residual", "mlp"}
    assert {s.combine for s in DEFAULT_GRID} <= {"l2", "average"}
    assert {s.feature_map for s in DEFAULT_GRID} <= {"linear", "tanh", "elu", "sqexp"}


def test_one_axis_at_a_time_from_residual() -> None:
    base = DEFAULT_GRID[0].axes()
    changed = {s.name: {k: v for k, v in s.axes().items() if base[k] != v} for s in DEFAULT_GRID}
    assert changed["residual"] == {}
    assert changed["mlp"] == {"name": "mlp", "site": "mlp"}
    assert changed["residual-uncentred"] == {"name": "residual-uncentred", "centre": False}
    assert changed["residual-last10"] == {"name": "residual-last10", "layers": "last-10"}
    assert changed["residual-skipfirst"] == {
        "name": "residual-skipfirst",
        "positions": "skip-first",
    }
    assert changed["residual-tanh-skipfirst"] == {
        "name": "residual-tanh-skipfirst",
        "feature_map": "tanh",
        "positions": "skip-first",
    }


def test_the_shipped_yaml_holds_the_default_grid() -> None:
    config, raw = load_study_config(REPO / "jobs" / "configs" / "twofold.yaml", "twofold")
    options = twofold_options_from_dict(raw, config)
    assert options.settings == DEFAULT_GRID  # names, axes and descriptions
    assert (options.seeds, options.limit, options.bbq, options.bbq_limit) == (3, None, "best", None)
    assert options.resamples == 10_000
    assert options.batch_size is None  # evaluate.batch_size at run time


def test_the_grid_is_read_from_yaml(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "seeds": 2,
            "limit": 50,
            "bbq": "none",
            "batch_size": 16,
            "resamples": 500,
            "settings": [
                "paper-truthfulqa",
                {"name": "res-half", "alpha": 0.5, "energy": 0.9, "description": "half strength"},
                {"site": "mlp", "layers": ["last-2", "last-4"]},
            ],
        },
    )
    config, raw = load_study_config(path, "twofold")
    options = twofold_options_from_dict(raw, config)
    assert [s.name for s in options.settings] == [
        "paper-truthfulqa",
        "res-half",
        "mlp-last-2",
        "mlp-last-4",
    ]
    assert options.settings[0] == PRESETS["paper-truthfulqa"]
    half = options.settings[1]
    assert (half.alpha, half.positive_energy, half.negative_energy, half.description) == (
        0.5,
        0.9,
        0.9,
        "half strength",
    )
    assert [(s.site, s.layers) for s in options.settings[2:]] == [
        ("mlp", "last-2"),
        ("mlp", "last-4"),
    ]
    assert (options.seeds, options.limit, options.bbq, options.batch_size) == (2, 50, None, 16)
    assert options.resamples == 500
    assert config.model.id == "some-model"  # the run config around the section


def test_without_a_section_the_default_grid_at_the_fit_sections_k(tmp_path: Path) -> None:
    config, raw = load_study_config(_write(tmp_path), "twofold")
    assert raw is None
    assert twofold_options_from_dict(raw, config) == TwofoldOptions(settings=DEFAULT_GRID)
    fit = {"positive_energy": 0.9, "negative_energy": 0.95}
    config, raw = load_study_config(_write(tmp_path, fit=fit), "twofold")
    options = twofold_options_from_dict(raw, config)
    assert [s.name for s in options.settings] == NAMES
    assert {(s.positive_energy, s.negative_energy) for s in options.settings} == {(0.9, 0.95)}
    assert options.settings == default_grid(0.9, 0.95)
    # a section without settings keeps the built-in grid too
    config, raw = load_study_config(_write(tmp_path, {"seeds": 5}), "twofold")
    options = twofold_options_from_dict(raw, config)
    assert options.settings == DEFAULT_GRID and options.seeds == 5


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"seeds": 0}, "twofold.seeds"),
        ({"seeds": True}, "twofold.seeds"),
        ({"seeds": None}, "twofold.seeds"),
        ({"limit": "ten"}, "twofold.limit"),
        ({"bogus": 1}, "bogus"),
        ({"bbq": 3}, "twofold.bbq"),
        ({"bbq": "nope"}, "bbq"),
        ({"settings": []}, "twofold.settings"),
        ({"settings": [{"site": "nowhere"}]}, "site"),
        ({"settings": ["no-such-preset"]}, "twofold.settings[0]"),
        ({"settings": [{"name": "a"}, {"name": "a", "site": "mlp"}]}, "distinct"),
        (["settings"], "a mapping"),
    ],
)
def test_bad_sections_raise_one_line(section: object, needle: str) -> None:
    with pytest.raises(ConfigError) as error:
        twofold_options_from_dict(section, SeaConfig())
    message = str(error.value)
    assert "\n" not in message
    assert needle in message


def test_list_settings_prints_the_yaml_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = {"settings": [{"name": "one", "description": "the first"}, "paper-bbq"]}
    assert main(["twofold", str(_write(tmp_path, section)), "--list-settings"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["one", "paper-bbq"]
    assert "the first" in lines[0]
    assert PRESETS["paper-bbq"].description in lines[1]


@pytest.mark.parametrize("names", [None, []])
def test_no_names_select_the_whole_grid(names: list[str] | None) -> None:
    assert select(DEFAULT_GRID, names) == list(DEFAULT_GRID)


def test_subset_comes_back_in_grid_order() -> None:
    chosen = select(DEFAULT_GRID, ["mlp-last10", "residual", "mlp"])
    assert [s.name for s in chosen] == ["residual", "mlp", "mlp-last10"]
    assert select(DEFAULT_GRID, ["mlp", "mlp"]) == [DEFAULT_GRID[NAMES.index("mlp")]]


def test_unknown_names_raise_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        select(DEFAULT_GRID, ["residual", "nope", "also-nope"])
    message = str(error.value)
    assert "\n" not in message
    assert "--settings" in message
    assert "nope, also-nope" in message
    assert "residual" in message  # the known names are listed


def test_custom_grid() -> None:
    grid = (Setting("a"), Setting("b", site="mlp"))
    assert select(grid, ["b"]) == [grid[1]]
    with pytest.raises(ConfigError):
        select(grid, ["residual"])


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
        Setting("d", positions="skip-first"),
        Setting("e", positive_energy=0.5, negative_energy=0.9, alpha=0.3),
        Setting("f", combine="average", layers="first-2", positions="generated", description="x"),
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
