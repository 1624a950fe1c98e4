"""Config sections on pydantic: the error contract (one line per problem) and what stays light."""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys
import textwrap

import pytest

from sea_dist.config import (
    DataConfig,
    EvaluateConfig,
    FitConfig,
    PublishConfig,
    ScheduleEntry,
    SeaConfig,
    config_from_dict,
)
from sea_dist.errors import ConfigError
from sea_dist.format.recipe import DamageBudget


def _problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    return info.value.problems


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1], ["config: expected a mapping, found [1]"]),
        ({"fit": [1]}, ["fit: expected a mapping, found [1]"]),
        (
            {True: 1},
            [
                "True: unknown key; expected one of collect, data, evaluate, fit, model, "
                "publish, schedule, store"
            ],
        ),
        ({"data": {"limit": "5"}}, ["data.limit: expected int or null, found '5'"]),
        ({"data": {"columns": {1: "a"}}}, ["data.columns: expected a mapping, found {1: 'a'}"]),
        ({"data": {"columns": {"id": 1}}}, ["data.columns.id: expected str, found 1"]),
        (
            {"collect": {"layers": [1, "x"]}},
            ["collect.layers: expected str or a list of int, found [1, 'x']"],
        ),
        (
            {"collect": {"layers": [2**70]}},
            [f"collect.layers: expected str or a list of int, found [{2**70}]"],
        ),
        (
            {"data": {"limit": 2**70}},
            [f"data.limit: expected an integer of at most {2**63 - 1}, found {2**70}"],
        ),
        (
            {"fit": {"positive_energy": 10**400}},
            [f"fit.positive_energy: expected a finite number, found {10**400}"[:60]],
        ),
        ({"publish": {"aliases": "x"}}, ["publish.aliases: expected a list of str, found 'x'"]),
        (
            {"evaluate": {"tasks": ["x"]}},
            ["evaluate.tasks[0]: expected 'truthfulqa' or 'bbq' or 'builtin', found 'x'"],
        ),
        (
            {"evaluate": {"budget": {"zz": 1, "max_perplexity_ratio": "1"}}},
            [
                "evaluate.budget.zz: unknown key; expected one of max_builtin_accuracy_drop, "
                "max_generation_drop, max_perplexity_ratio, min_logprob_per_token_delta",
                "evaluate.budget.max_perplexity_ratio: expected float, found '1'",
            ],
        ),
        (
            {"schedule": {"schedules": ["x"]}},
            ["schedule.schedules[0]: expected a mapping, found 'x'"],
        ),
        # an unknown key does not hide the checks across the section's other fields
        (
            {
                "schedule": {
                    "schedules": [{"name": " ", "cron": "0 3 * * *", "job_config": "x", "bogus": 1}]
                }
            },
            [
                "schedule.schedules[0].bogus: unknown key; expected one of address, cron, job, "
                "job_config, name, timezone",
                "schedule.schedules[0].name: expected a non-empty schedule name, found ''",
            ],
        ),
    ],
)
def test_problem_lines(data: object, expected: list[str]) -> None:
    problems = _problems(data)
    assert [p[: len(e)] for p, e in zip(problems, expected)] == expected
    assert len(problems) == len(expected)


def test_unknown_keys_come_first_then_fields_in_declared_order() -> None:
    data = {"fit": {"svd": "magic", "centre": "no"}, "model": {"device": 1}, "nonsense": {}}
    assert [p.split(":")[0] for p in _problems(data)] == [
        "nonsense",
        "model.device",
        "fit.centre",
        "fit.svd",
    ]


def test_empty_sections_take_the_defaults() -> None:
    config = config_from_dict({"fit": None, "evaluate": {"budget": None}})
    assert config == SeaConfig() == config_from_dict(None)
    assert type(config.evaluate.budget) is DamageBudget  # the format's own class, not a copy
    budget = config_from_dict({"evaluate": {"budget": {"max_perplexity_ratio": 2}}}).evaluate
    assert budget.budget == DamageBudget(max_perplexity_ratio=2.0)


def test_direct_construction_checks_types_and_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="centre: expected bool, found 1"):
        FitConfig(centre=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="source: expected 'builtin' or"):
        DataConfig(source="excel")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="bogus: unknown key"):
        FitConfig(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"budget.max_perplexity_ratio: expected a finite"):
        EvaluateConfig(budget=DamageBudget(max_perplexity_ratio=float("nan")))
    assert PublishConfig(aliases=["a", "b"]).aliases == ("a", "b")  # type: ignore[arg-type]


def test_sections_stay_frozen_dataclasses() -> None:
    """dataclasses.replace / asdict keep working (collect, models and pipeline use them)."""
    config = SeaConfig()
    fit = dataclasses.replace(config.fit, centre=False)
    assert fit.centre is False and config.fit.centre is True
    with pytest.raises(ConfigError, match="fixed_k: expected a value > 0"):
        dataclasses.replace(config.fit, fixed_k=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.fit.centre = False  # type: ignore[misc]
    assert dataclasses.asdict(config)["fit"]["centre"] is True
    assert hash(ScheduleEntry(name="a", cron="0 3 * * *", job_config="x"))
    # Ray ships configs to actors by pickling them
    loaded = config_from_dict({"collect": {"layers": [1, 2]}})
    assert pickle.loads(pickle.dumps(loaded)) == loaded  # noqa: S301 (our own bytes)


def test_config_package_loads_without_pydantic() -> None:
    """The base install imports sea_dist.config (via sea_dist.edit) without pydantic."""
    script = textwrap.dedent(
        """
        import json, sys
        for name in ("pydantic", "pydantic_core", "yaml", "fsspec"):
            sys.modules[name] = None  # `import name` now raises ImportError
        from sea_dist.config import DEMO_MODEL_ID, LAYER_SPEC_RE, SITES, LayerSpec
        import sea_dist.edit, sea_dist.format, sea_dist.layers
        loaded = sorted(m for m in sys.modules if m.startswith("sea_dist.config"))
        print(json.dumps(loaded))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "sea_dist.config",
        "sea_dist.config.spec",
    ]
