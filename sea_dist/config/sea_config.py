"""The sections that say what a run produces and when (publish, evaluate, schedule), and SeaConfig.

Frozen pydantic dataclasses like those of :mod:`sea_dist.config.sections`; :class:`SeaConfig`
holds one of each section and is what ``sea-dist config schema`` describes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Strict, ValidationError
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from sea_dist.config.checked import (
    PROBLEMS,
    SECTION,
    Checked,
    Float,
    Int,
    Layers,
    Names,
    Str,
    checked,
    list_as_tuple,
    problems_from,
)
from sea_dist.config.sections import (
    CollectConfig,
    DataConfig,
    FitConfig,
    ModelConfig,
    StoreConfig,
)
from sea_dist.config.spec import (
    CRON_FIELD_RE,
    MAX_BATCH,
    MAX_COUNT,
    NAME_RE,
    at_most,
    check_layers,
    positive,
)
from sea_dist.errors import ConfigError, excerpt
from sea_dist.format.recipe import DamageBudget


@checked
@dataclass(frozen=True, config=SECTION)
class PublishConfig(Checked):
    """Where and under which name fitted projections are published."""

    registry: Str = "sea-runs/registry"
    """Registry folder or fsspec URL the new version is written to."""
    name: Str = "sea-demo"
    """Artifact name (lowercase letters, digits, '.', '_' or '-')."""
    aliases: Names = ()
    """Aliases moved to the new version (not ``latest``, which always moves)."""
    gated_aliases: Names = ("production", "prod")
    """Aliases that move only to a version whose evaluation record passes the promotion gate
    (see :mod:`sea_dist.registry.gate`)."""

    def _problems(self) -> list[str]:
        problems = []
        named = [("aliases", a) for a in self.aliases]
        named += [("gated_aliases", a) for a in self.gated_aliases]
        for label, value in [("name", self.name)] + named:
            if not NAME_RE.fullmatch(value) or value == "latest" and label != "name":
                problems.append(
                    f"{label}: expected lowercase letters, digits, '.', '_' or '-' "
                    f"(not 'latest' for an alias), found {value!r}"
                )
        return problems


@dataclass(frozen=True, config=SECTION)
class _BudgetFields:
    """The fields of :class:`~sea_dist.format.recipe.DamageBudget`, typed strictly."""

    max_perplexity_ratio: Float = DamageBudget.max_perplexity_ratio
    max_builtin_accuracy_drop: Float = DamageBudget.max_builtin_accuracy_drop
    min_logprob_per_token_delta: Float = DamageBudget.min_logprob_per_token_delta
    max_generation_drop: Float = DamageBudget.max_generation_drop


def _budget(value: Any) -> Any:
    """A mapping from YAML becomes the format's own DamageBudget (what the gate records)."""
    if value is None:  # an empty `budget:` takes the defaults, as an empty section does
        return DamageBudget()
    if not isinstance(value, dict):
        return value  # an instance passes; anything else is refused as "expected a mapping"
    try:
        fields = _BudgetFields(**value)
    except ValidationError as error:
        problems = problems_from(error, _BudgetFields, value)
        raise PydanticCustomError(PROBLEMS, "budget", {"problems": problems}) from None
    return DamageBudget(**dataclasses.asdict(fields))


@checked
@dataclass(frozen=True, config=SECTION)
class EvaluateConfig(Checked):
    """Which benchmarks to score before and after the edit."""

    tasks: Annotated[
        tuple[Literal["truthfulqa", "bbq", "builtin"], ...],
        Strict(),
        BeforeValidator(list_as_tuple),
    ] = ("truthfulqa",)
    """Benchmarks scored before and after the edit."""
    data_dir: Str | None = None
    """Folder of the benchmark files (looked up first, before ``data.data_dir`` /
    ``$SEA_DIST_DATA_DIR``)."""
    truthfulqa_file: Str = "TruthfulQA.csv"
    """The TruthfulQA questions scored (and used by the gate): a file name looked up under
    ``truthfulqa/`` in the data locations (``TruthfulQA-2.csv`` scores fold 2), or a path."""
    bbq_file: Str = "bbq-validation-disambig.jsonl"
    """The BBQ rows scored: a file name looked up under ``bbq/``, or a path."""
    limit: Int | None = None
    """Score at most this many questions per benchmark."""
    batch_size: Int = 8
    """Sequences per forward pass."""
    layers: Layers = "all"
    """Which of the fitted layers the run's edit applies (the recipe it publishes)."""
    alpha: Float = 1.0
    """Edit strength in (0, 1] of the run's recipe (1 = the full SEA edit)."""
    positions: Literal["all", "skip-first", "generated"] = "all"
    """Which tokens the run's recipe edits (see sea_dist.format.recipe.POSITIONS)."""
    out: Str = "sea-runs/eval"
    """Local folder of the before/after report."""
    budget: Annotated[DamageBudget, BeforeValidator(_budget)] = field(default_factory=DamageBudget)
    """The damage budget the run's evaluation record is judged against (the promotion gate)."""

    def _problems(self) -> list[str]:
        problems = check_layers("layers", self.layers)
        for name in ("truthfulqa_file", "bbq_file"):
            if not getattr(self, name).strip():
                problems.append(f"{name}: expected a file name or path, found ''")
        if not 0.0 < self.alpha <= 1.0:
            problems.append(f"alpha: expected a strength in (0, 1], found {self.alpha!r}")
        problems += positive("limit", self.limit) + positive("batch_size", self.batch_size)
        problems += at_most("limit", self.limit, MAX_COUNT, "questions")
        problems += at_most("batch_size", self.batch_size, MAX_BATCH, "sequences per pass")
        for name, value in self.budget.to_dict().items():  # a DamageBudget given as is
            if not math.isfinite(value):
                problems.append(f"budget.{name}: expected a finite number, found {value!r}")
        problems += positive("budget.max_perplexity_ratio", self.budget.max_perplexity_ratio)
        for name in ("max_builtin_accuracy_drop", "max_generation_drop"):
            if getattr(self.budget, name) < 0:
                problems.append(
                    f"budget.{name}: expected a value >= 0, found {getattr(self.budget, name)!r}"
                )
        return problems


@checked
@dataclass(frozen=True, config=SECTION)
class ScheduleEntry(Checked):
    """One cron trigger that submits a Ray job."""

    name: Str
    """Schedule name (unique in the file; it names the history rows)."""
    cron: Str
    """Five cron fields, e.g. ``0 3 * * *`` (03:00 every day), in ``timezone``."""
    job_config: Str
    """The YAML config the submitted job runs."""
    timezone: Str = "UTC"
    """IANA time zone the cron fields are read in (daylight saving handled)."""
    job: Literal["pipeline", "collect", "fit", "publish", "evaluate"] = "pipeline"
    """Which job script is submitted."""
    address: Str = "http://127.0.0.1:8265"
    """Ray job submission address (the dashboard)."""

    def _problems(self) -> list[str]:

        # Here, not at module level: the schedule package imports this module.
        from sea_dist.cron import CronExpression

        problems = []
        if not self.name.strip():
            problems.append("name: expected a non-empty schedule name, found ''")
        fields = self.cron.split()
        if len(fields) != 5 or not all(CRON_FIELD_RE.match(f) for f in fields):
            return problems + [
                f"cron: expected 5 fields like '0 3 * * *', found {excerpt(self.cron)}"
            ]
        # The scheduler's own parser: field ranges, steps and the IANA time zone, so that
        # validate-config refuses what `sea-dist schedule` would refuse at its first tick.
        # Fields and zone are parsed apart, so that both are reported in one round.
        for expression, zone in ((self.cron, "UTC"), ("0 0 * * *", self.timezone)):
            try:
                cron = CronExpression.parse(expression, zone)
                cron.next_fire(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))  # never fires: refused
            except ConfigError as error:
                problems += error.problems
        return problems


@checked
@dataclass(frozen=True, config=SECTION)
class ScheduleConfig(Checked):
    """Scheduled refits."""

    schedules: Annotated[tuple[ScheduleEntry, ...], Strict(), BeforeValidator(list_as_tuple)] = ()
    """Cron triggers, each submitting one Ray job."""
    history: Str = "sea-runs/schedule-history.parquet"
    """Parquet file of every submission and its outcome."""

    def _problems(self) -> list[str]:
        names = [entry.name for entry in self.schedules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            return [
                f"schedules: expected unique names, found {excerpt(duplicates)} more than once; "
                "rename the duplicates"
            ]
        return []


@checked
@dataclass(frozen=True, config=SECTION)
class SeaConfig(Checked):
    """The whole configuration of a sea-dist run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Which causal LM to load and where to run it."""
    data: DataConfig = field(default_factory=DataConfig)
    """Where the demonstrations come from and how prompts are rendered."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    """What activations to record and how the Ray collection is laid out."""
    store: StoreConfig = field(default_factory=StoreConfig)
    """Activation store location and encoding."""
    fit: FitConfig = field(default_factory=FitConfig)
    """How cross-covariances and projections are computed."""
    publish: PublishConfig = field(default_factory=PublishConfig)
    """Where and under which name fitted projections are published."""
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    """Which benchmarks to score before and after the edit."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Scheduled refits."""
