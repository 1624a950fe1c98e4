"""Config: construction-time validation, YAML loading, problem reporting, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from sea_dist.config import (
    CollectConfig,
    FitConfig,
    SeaConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    with_overrides,
)
from sea_dist.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "jobs" / "configs").glob("*.yaml"))


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_config_validates(path: Path) -> None:
    from sea_dist.studies.options import load_study_config, tune_options_from_dict

    # study configs (tune/twofold sections) carry a normal run config next to their section
    config, raw = load_study_config(path, "tune")
    if raw is not None:
        assert tune_options_from_dict(raw).space
    assert isinstance(config, SeaConfig)
    # dumping and reloading gives the same config (provenance round trip)
    assert config_from_dict(config_to_dict(config)) == config


def test_defaults_are_the_embedded_demo() -> None:
    config = SeaConfig()
    assert config.model.id == "smollm2-135m-instruct"
    assert config.data.source == "builtin"
    assert config.fit.combine == "l2"


def test_every_problem_reported_with_field_path() -> None:
    data = {
        "collect": {"batch_size": "eight", "bogus": 1},
        "fit": {"positive_energy": 1.5, "svd": "magic"},
        "nonsense": {},
    }
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    problems = info.value.problems
    joined = "\n".join(problems)
    assert "collect.batch_size: expected int, found 'eight'" in joined
    assert "collect.bogus: unknown key" in joined
    assert "nonsense: unknown key" in joined
    assert "fit.svd: expected" in joined and "'magic'" in joined
    assert len(problems) == 4  # positive_energy is checked once the types are right


@pytest.mark.parametrize(
    ("section", "values", "fragment"),
    [
        (CollectConfig, {"layers": "middle"}, "layers: expected 'all', 'last-L'"),
        (CollectConfig, {"layers": (1, 1)}, "distinct"),
        (CollectConfig, {"layers": ()}, "non-empty"),
        (CollectConfig, {"site": "embeddings"}, "site: expected one of residual, mlp, attn"),
        (CollectConfig, {"site_template": "model.layers.mlp"}, "{layer}"),
        (CollectConfig, {"rows_per_shard": 0}, "rows_per_shard: expected a value > 0"),
        (FitConfig, {"positive_energy": 0.0}, "positive_energy: expected an energy threshold"),
        (FitConfig, {"negative_energy": 1.01}, "negative_energy"),
        (FitConfig, {"fixed_k": 0}, "fixed_k"),
        (FitConfig, {"scheduler": "mpi"}, "scheduler: expected threads"),
    ],
)
def test_construction_validates(section: type, values: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        section(**values)
    assert fragment in str(info.value)


def test_bool_and_int_are_not_confused() -> None:
    with pytest.raises(ConfigError, match="expected bool"):
        config_from_dict({"fit": {"centre": 1}})
    with pytest.raises(ConfigError, match="expected int"):
        config_from_dict({"collect": {"batch_size": True}})
    assert config_from_dict({"fit": {"positive_energy": 1}}).fit.positive_energy == 1.0


def test_layers_list_becomes_tuple() -> None:
    config = config_from_dict({"collect": {"layers": [3, 1]}})
    assert config.collect.layers == (3, 1)
    assert config_to_dict(config)["collect"]["layers"] == [3, 1]


def test_schedule_entries_validated() -> None:
    ok = {"name": "n", "cron": "0 3 * * *", "job_config": "x.yaml"}
    config = config_from_dict({"schedule": {"schedules": [ok]}})
    assert config.schedule.schedules[0].timezone == "UTC"
    with pytest.raises(ConfigError, match=r"schedule.schedules\[0\].cron: expected 5 fields"):
        config_from_dict({"schedule": {"schedules": [{**ok, "cron": "daily"}]}})
    with pytest.raises(ConfigError, match=r"schedule.schedules\[0\].job_config: expected str"):
        config_from_dict({"schedule": {"schedules": [{"name": "n", "cron": "0 3 * * *"}]}})


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="found no file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="expected valid YAML"):
        load_config(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="config: expected a mapping"):
        load_config(top)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"model:\n  id: \xff\xfe\n")
    with pytest.raises(ConfigError, match="expected valid YAML"):
        load_config(binary)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == SeaConfig()


def test_with_overrides() -> None:
    config = with_overrides(SeaConfig(), fit={"centre": False}, collect={"site": "mlp"})
    assert config.fit.centre is False and config.collect.site == "mlp"
    with pytest.raises(ConfigError, match="unknown section"):
        with_overrides(SeaConfig(), fitting={"centre": False})
    with pytest.raises(ConfigError, match="fit.centre: expected bool"):
        with_overrides(SeaConfig(), fit={"centre": "no"})


def test_configs_are_frozen() -> None:
    config = SeaConfig()
    with pytest.raises(AttributeError):
        config.fit = FitConfig()  # type: ignore[misc]
