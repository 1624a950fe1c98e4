"""The ``tune:`` section of a tuning config: protocol, budget and search space, validated.

A tuning config is a normal run config (``model``, ``data``, ``collect``, ``evaluate``...) plus a
``tune`` section::

    tune:
      dev: TruthfulQA-1.csv          # fit + validation questions (split below)
      test: TruthfulQA-2.csv         # touched once, for the final report
      validation_fraction: 0.3
      seeds: 3                        # random-subspace controls per setting
      budget: {max_perplexity_ratio: 1.05, max_builtin_accuracy_drop: 0.02,
               min_logprob_per_token_delta: -0.10, max_generation_drop: 0.05}
      budget_minutes: 50              # successive halving stops early to fit
      presets: [paper-truthfulqa, paper-bbq, residual]
      space: [...]                    # see sea_dist.studies.space
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sea_dist.config import SeaConfig, config_from_dict, read_config_document
from sea_dist.errors import ConfigError, expected_found
from sea_dist.format.recipe import DamageBudget
from sea_dist.studies.space import PRESETS, Setting, parse_space, preset


@dataclass(frozen=True)
class TuneOptions:
    """What ``sea-dist tune`` runs.

    Attributes:
        space: the settings searched.
        presets: settings reported on the test fold next to the chosen one.
        dev: TruthfulQA file (under ``<data>/truthfulqa/``) split into fit and validation parts.
        test: the test file; scored once, after the choice.
        dev_limit / test_limit: seeded question subsets (None = all).
        validation_fraction: share of the dev questions held out for validation.
        seeds: random-subspace controls per setting (>= 3 for a selection).
        budget: the damage budget.
        budget_minutes: wall-clock budget of the search, after recording and fitting (None: no
            limit); a third of it is kept for the finalists' full checks.
        eta: successive-halving factor (keep 1/eta of the settings, eta x the questions).
        chunk_questions: validation questions per chunk (the unit of a halving round).
        first_round_chunks: chunks scored in the first round.
        finalists: settings that reach the full check (builtin accuracy, generation).
        generation_limit: built-in questions answered greedily for the answer rate.
        max_new_tokens: tokens per greedy answer.
        report_prompts: held-out prompts shown with greedy generations in the report.
        resamples: bootstrap resamples for intervals.
        batch_size: sequences per forward pass (None: evaluate.batch_size).
        restart: restart scoring from cached inputs of the first edited layer.
        seed: split and subset seed.
    """

    space: tuple[Setting, ...] = (PRESETS["residual"],)
    presets: tuple[str, ...] = ("paper-truthfulqa", "paper-bbq", "residual")
    dev: str = "TruthfulQA-1.csv"
    test: str = "TruthfulQA-2.csv"
    dev_limit: int | None = None
    test_limit: int | None = None
    validation_fraction: float = 0.3
    seeds: int = 3
    budget: DamageBudget = field(default_factory=DamageBudget)
    budget_minutes: float | None = None
    eta: int = 3
    chunk_questions: int = 16
    first_round_chunks: int = 1
    finalists: int = 3
    generation_limit: int = 40
    max_new_tokens: int = 24
    report_prompts: int = 10
    resamples: int = 2000
    batch_size: int | None = None
    restart: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        for name in (
            "seeds",
            "eta",
            "chunk_questions",
            "first_round_chunks",
            "finalists",
            "generation_limit",
            "max_new_tokens",
            "report_prompts",
            "resamples",
            "batch_size",
            "dev_limit",
            "test_limit",
        ):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                problems.append(f"tune.{name}: expected an integer >= 1, found {value!r}")
        if self.eta < 2:
            problems.append(f"tune.eta: expected >= 2, found {self.eta}")
        if not 0.05 <= self.validation_fraction <= 0.95:
            problems.append(
                f"tune.validation_fraction: expected 0.05..0.95, found {self.validation_fraction}"
            )
        minutes = self.budget_minutes
        if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
            problems.append(f"tune.budget_minutes: expected a number > 0, found {minutes!r}")
        for name in self.presets:
            if name not in PRESETS:
                problems.append(
                    f"tune.presets: expected names among {', '.join(PRESETS)}, found {name!r}"
                )
        if problems:
            raise ConfigError("; ".join(problems))


_SCALARS = {f.name for f in fields(TuneOptions)} - {"space", "presets", "budget"}


def tune_options_from_dict(data: Any) -> TuneOptions:
    """Parse a ``tune:`` section.

    Raises:
        ConfigError: unknown keys, bad values, a bad space or budget.
    """
    if data is None:
        return TuneOptions()
    if not isinstance(data, Mapping):
        raise ConfigError(expected_found("tune", "a mapping", type(data).__name__))
    unknown = sorted(set(data) - _SCALARS - {"space", "presets", "budget"})
    if unknown:
        raise ConfigError(
            expected_found("tune", f"keys among {', '.join(sorted(_SCALARS | {'space'}))}", unknown)
        )
    kwargs: dict[str, Any] = {key: data[key] for key in _SCALARS if key in data}
    for key in ("validation_fraction", "budget_minutes"):
        value = kwargs.get(key)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise ConfigError(expected_found(f"tune.{key}", "a number", value))
    if "space" in data:
        kwargs["space"] = tuple(parse_space(data["space"], "tune.space"))
    if "presets" in data:
        names = data["presets"] or []
        if not isinstance(names, list):
            raise ConfigError(expected_found("tune.presets", "a list of preset names", names))
        for name in names:
            preset(name, "tune.presets")
        kwargs["presets"] = tuple(names)
    if "budget" in data:
        budget = data["budget"] or {}
        allowed = set(DamageBudget().to_dict())
        if not isinstance(budget, Mapping) or set(budget) - allowed:
            raise ConfigError(
                expected_found("tune.budget", f"keys among {', '.join(sorted(allowed))}", budget)
            )
        values = {}
        for key, value in budget.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(expected_found(f"tune.budget.{key}", "a number", value))
            if not math.isfinite(value):
                raise ConfigError(expected_found(f"tune.budget.{key}", "a finite number", value))
            values[key] = float(value)
        kwargs["budget"] = DamageBudget(**values)
    return TuneOptions(**kwargs)


def load_study_config(path: str | Path, section: str) -> tuple[SeaConfig, Any]:
    """Read a study config: the run config and the raw ``section`` (``tune`` / ``twofold``).

    Raises:
        ConfigError: the file is missing or invalid.
    """
    data = read_config_document(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(expected_found(f"config {path}", "a mapping of sections", data))
    rest = dict(data)
    raw = rest.pop(section, None)
    for other in ("tune", "twofold"):
        rest.pop(other, None)
    return config_from_dict(rest, SeaConfig), raw
