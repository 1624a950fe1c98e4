"""Frozen, typed configuration: YAML in, validated on construction, dumped back for provenance.

Every section is a frozen dataclass. :func:`config_from_dict` converts plain data (from YAML) into
them, collecting *every* problem as ``field.path: expected ..., found ...`` before raising one
:class:`~sea_dist.errors.ConfigError`, so a user fixes a file in one round.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from sea_dist.errors import ConfigError, excerpt
from sea_dist.format.recipe import DamageBudget

DEMO_MODEL_ID = "smollm2-135m-instruct"
SITES = ("residual", "mlp", "attn")
LAYER_SPEC_RE = re.compile(r"^(all|(last|first)-[1-9][0-9]*|(last|first)-([1-9][0-9]?|100)%)$")

LayerSpec = str | tuple[int, ...]
"""``"all"``, ``"last-L"``, ``"first-L"`` or an explicit tuple of 0-based decoder layer indices."""


def _check_layers(name: str, value: LayerSpec) -> list[str]:
    if isinstance(value, str):
        if not LAYER_SPEC_RE.match(value):
            return [
                f"{name}: expected 'all', 'last-L', 'first-L' or a list of layer indices, "
                f"found {value!r}"
            ]
        return []
    if not value:
        return [f"{name}: expected a non-empty list of layer indices, found []"]
    bad = [i for i in value if i < 0]
    if bad:
        return [f"{name}: expected layer indices >= 0, found {bad}"]
    if len(set(value)) != len(value):
        return [f"{name}: expected distinct layer indices, found {list(value)}"]
    return []


def _positive(name: str, value: float | int | None) -> list[str]:
    if value is not None and value <= 0:
        return [f"{name}: expected a value > 0, found {value!r}"]
    return []


def _at_most(name: str, value: float | int | None, high: float | int, why: str) -> list[str]:
    """Upper bounds: a value past them is a typo, and would exhaust memory or time later."""
    if value is not None and value > high:
        return [f"{name}: expected at most {high} ({why}), found {value!r}"]
    return []


# Upper bounds of the sizes and counts in a config; each is far beyond any sensible run.
MAX_ROWS_PER_SHARD = 65_536
"""One chunk holds rows_per_shard x d values (65536 x 8192 float32 = 2 GiB)."""
MAX_BATCH = 4_096
MAX_NEW_TOKENS = 32_768
MAX_COUNT = 1_000_000_000
"""Demonstration and question limits."""


class _Checked:
    """Mixin: run ``_problems()`` after construction and raise one ConfigError."""

    def _problems(self) -> list[str]:
        return []

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class ModelConfig(_Checked):
    """Which causal LM to load and where to run it."""

    id: str = DEMO_MODEL_ID
    """Local HF folder, hub id, path to a ``.gguf`` file, or ``smollm2-135m-instruct`` (demo)."""
    revision: str | None = None
    gguf_file: str | None = None
    device: str = "cpu"
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    cache_dir: str | None = None
    """Where converted models are cached; default ``$SEA_DIST_CACHE`` or ``~/.cache/sea-dist``."""

    def _problems(self) -> list[str]:
        problems = []
        if not self.id.strip():
            problems.append("id: expected a model id or path, found ''")
        if not re.match(r"^(cpu|auto|cuda(:[0-9]+)?|mps)$", self.device):
            problems.append(
                f"device: expected cpu, auto, cuda or cuda:N, found {excerpt(self.device)}"
            )
        return problems


@dataclass(frozen=True)
class DataConfig(_Checked):
    """Where the demonstrations come from and how prompts are rendered."""

    source: Literal["builtin", "truthfulqa", "bbq", "halueval", "jsonl", "csv", "parquet"] = (
        "builtin"
    )
    path: str | None = None
    """File to read; for truthfulqa/bbq, default is ``$SEA_DIST_DATA_DIR`` or ../shared/data."""
    limit: int | None = None
    positive: str = "best"
    """TruthfulQA: ``best`` (Best Answer) or ``first`` (first Correct Answer)."""
    negative: str = "first"
    """TruthfulQA: ``first`` incorrect answer (or ``last``)."""
    columns: dict[str, str] = field(default_factory=dict)
    """Generic loaders: map schema field (id/prompt/positive/negative) to a column name."""
    template: Literal["qa", "chat"] = "qa"
    few_shot: bool = False
    system_prompt: str | None = None
    holdout: float = 0.0
    """Share of the demonstrations (after ``limit``) kept out of the fit, chosen by a hash of
    each id; with ``source: builtin`` the ``builtin`` evaluation and the gate's damage check
    score that part, so their accuracy is held out, not in-sample."""

    def _problems(self) -> list[str]:
        problems = _positive("limit", self.limit)
        if not (math.isfinite(self.holdout) and 0.0 <= self.holdout <= 0.5):
            problems.append(f"holdout: expected a share in [0, 0.5], found {self.holdout!r}")
        problems += _at_most("limit", self.limit, MAX_COUNT, "demonstrations")
        if self.source in ("jsonl", "csv", "parquet", "halueval") and not self.path:
            problems.append(f"path: expected a file path for source {self.source!r}, found None")
        unknown = set(self.columns) - {"id", "prompt", "positive", "negative"}
        if unknown:
            problems.append(
                "columns: expected keys among id, prompt, positive, negative, "
                f"found {sorted(unknown)}"
            )
        if self.positive not in ("best", "first"):
            problems.append(f"positive: expected 'best' or 'first', found {self.positive!r}")
        if self.negative not in ("first", "last"):
            problems.append(f"negative: expected 'first' or 'last', found {self.negative!r}")
        return problems


@dataclass(frozen=True)
class CollectConfig(_Checked):
    """What activations to record and how the Ray collection is laid out."""

    layers: LayerSpec = "all"
    site: str = "residual"
    """``residual`` (decoder block output), ``mlp`` (MLP output) or ``attn`` (attention output)."""
    site_template: str | None = None
    """Override: module path with ``{layer}``, e.g. ``model.layers.{layer}.mlp``."""
    token: Literal["last", "mean"] = "last"
    neutral: Literal["generate", "prompt"] = "generate"
    max_new_tokens: int = 16
    batch_size: int = 8
    rows_per_shard: int = 64
    num_actors: int = 0
    """0 = one actor per GPU, or per CPU slot on CPU-only clusters."""
    num_gpus_per_actor: float = 0.0
    """0 = use one GPU per actor when the cluster has GPUs."""
    max_in_flight: int = 2
    """Shards queued per actor (bounded ``ray.wait`` window)."""
    max_retries: int = 3
    ray_address: str | None = None

    def _problems(self) -> list[str]:
        problems = _check_layers("layers", self.layers)
        if self.site not in SITES and self.site_template is None:
            problems.append(
                f"site: expected one of {', '.join(SITES)} (or set site_template), "
                f"found {self.site!r}"
            )
        if self.site_template is not None and "{layer}" not in self.site_template:
            problems.append(
                f"site_template: expected a module path containing '{{layer}}', "
                f"found {self.site_template!r}"
            )
        for name in ("max_new_tokens", "batch_size", "rows_per_shard", "max_in_flight"):
            problems += _positive(name, getattr(self, name))
        problems += _at_most("max_new_tokens", self.max_new_tokens, MAX_NEW_TOKENS, "tokens")
        problems += _at_most("batch_size", self.batch_size, MAX_BATCH, "sequences per pass")
        problems += _at_most(
            "rows_per_shard", self.rows_per_shard, MAX_ROWS_PER_SHARD, "rows per Zarr chunk"
        )
        problems += _at_most("max_in_flight", self.max_in_flight, 1024, "shards per actor")
        problems += _at_most("num_actors", self.num_actors, 100_000, "actors")
        problems += _at_most("max_retries", self.max_retries, 1000, "retries per shard")
        problems += _at_most("num_gpus_per_actor", self.num_gpus_per_actor, 1024, "GPUs")
        if self.num_actors < 0:
            problems.append(f"num_actors: expected >= 0, found {self.num_actors}")
        if self.max_retries < 0:
            problems.append(f"max_retries: expected >= 0, found {self.max_retries}")
        if self.num_gpus_per_actor < 0:
            problems.append(f"num_gpus_per_actor: expected >= 0, found {self.num_gpus_per_actor}")
        return problems


@dataclass(frozen=True)
class StoreConfig(_Checked):
    """Activation store location and encoding."""

    url: str = "sea-runs/store.zarr"
    """Local folder or any fsspec URL."""
    dtype: Literal["float32", "float16"] = "float32"
    codec: Literal["zstd", "blosc", "gzip", "none"] = "zstd"
    overwrite: bool = False

    def _problems(self) -> list[str]:
        return [] if self.url.strip() else ["url: expected a folder or fsspec URL, found ''"]


@dataclass(frozen=True)
class FitConfig(_Checked):
    """How cross-covariances and projections are computed."""

    out: str = "sea-runs/fit"
    centre: bool = True
    positive_energy: float = 0.99
    """K+: keep the smallest k whose captured energy of Omega+ reaches this ratio."""
    negative_energy: float = 0.99
    """K-: same for Omega-."""
    fixed_k: int | None = None
    """Use exactly this k for both projections instead of the energy rule."""
    svd: Literal["auto", "exact", "qr", "randomized"] = "auto"
    feature_map: Literal["linear", "tanh", "elu", "sqexp"] = "linear"
    feature_map_scale: float = 1.0
    """tanh/elu input scale, or the squared-exponential length scale."""
    combine: Literal["l2", "average"] = "l2"
    scheduler: str = "threads"
    """``threads``, ``synchronous``, ``ray`` or a ``distributed`` address (``tcp://host:port``)."""
    chunk_rows: int = 4096
    precision: Literal["float64", "mixed"] = "float64"
    """Statistics pass products: ``float64``, or ``mixed`` (float32 GEMMs summed into float64
    per block; about twice as fast, within 1e-6 of float64 on the benchmark)."""
    device: str = "cpu"
    """Where the statistics pass and SVDs run: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (torch on
    a CUDA device when one is visible)."""
    oversample: int = 10
    power_iterations: int = 2
    seed: int = 0

    def _problems(self) -> list[str]:
        problems = []
        for name in ("positive_energy", "negative_energy"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                problems.append(f"{name}: expected an energy threshold in (0, 1], found {value!r}")
        problems += _positive("fixed_k", self.fixed_k)
        problems += _at_most("fixed_k", self.fixed_k, 1_000_000, "directions")
        problems += _positive("feature_map_scale", self.feature_map_scale)
        problems += _at_most("feature_map_scale", self.feature_map_scale, 1e6, "input scale")
        problems += _positive("chunk_rows", self.chunk_rows)
        problems += _at_most("chunk_rows", self.chunk_rows, 100_000_000, "rows per block")
        problems += _at_most("oversample", self.oversample, 100_000, "extra directions")
        problems += _at_most("power_iterations", self.power_iterations, 1000, "iterations")
        if self.seed < 0:
            problems.append(f"seed: expected an integer >= 0, found {self.seed}")
        if self.oversample < 0 or self.power_iterations < 0:
            problems.append(
                "oversample/power_iterations: expected >= 0, "
                f"found {self.oversample}/{self.power_iterations}"
            )
        if not re.match(r"^(cpu|auto|cuda(:[0-9]+)?)$", self.device):
            problems.append(
                f"device: expected cpu, auto, cuda or cuda:N, found {excerpt(self.device)}"
            )
        if not (
            self.scheduler in ("threads", "synchronous", "processes", "ray")
            or re.match(r"^(tcp|tls|inproc)://", self.scheduler)
        ):
            problems.append(
                "scheduler: expected threads, synchronous, ray or tcp://host:port, "
                f"found {self.scheduler!r}"
            )
        return problems


NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class PublishConfig(_Checked):
    """Where and under which name fitted projections are published."""

    registry: str = "sea-runs/registry"
    name: str = "sea-demo"
    aliases: tuple[str, ...] = ()
    gated_aliases: tuple[str, ...] = ("production", "prod")
    """Aliases that move only to a version whose evaluation record passes the promotion gate
    (see :mod:`sea_dist.artifacts.gate`)."""

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


@dataclass(frozen=True)
class EvaluateConfig(_Checked):
    """Which benchmarks to score before and after the edit."""

    tasks: tuple[Literal["truthfulqa", "bbq", "builtin"], ...] = ("truthfulqa",)
    data_dir: str | None = None
    truthfulqa_file: str = "TruthfulQA.csv"
    """The TruthfulQA questions scored (and used by the gate): a file name looked up under
    ``truthfulqa/`` in the data locations (``TruthfulQA-2.csv`` scores fold 2), or a path."""
    bbq_file: str = "bbq-validation-disambig.jsonl"
    """The BBQ rows scored: a file name looked up under ``bbq/``, or a path."""
    limit: int | None = None
    batch_size: int = 8
    layers: LayerSpec = "all"
    """Which of the fitted layers the run's edit applies (the recipe it publishes)."""
    alpha: float = 1.0
    """Edit strength in (0, 1] of the run's recipe (1 = the full SEA edit)."""
    positions: Literal["all", "skip-first", "generated"] = "all"
    """Which tokens the run's recipe edits (see sea_dist.format.recipe.POSITIONS)."""
    out: str = "sea-runs/eval"
    budget: DamageBudget = field(default_factory=DamageBudget)
    """The damage budget the run's evaluation record is judged against (the promotion gate)."""

    def _problems(self) -> list[str]:
        problems = _check_layers("layers", self.layers)
        for name in ("truthfulqa_file", "bbq_file"):
            if not getattr(self, name).strip():
                problems.append(f"{name}: expected a file name or path, found ''")
        if not (math.isfinite(self.alpha) and 0.0 < self.alpha <= 1.0):
            problems.append(f"alpha: expected a strength in (0, 1], found {self.alpha!r}")
        problems += _positive("limit", self.limit) + _positive("batch_size", self.batch_size)
        problems += _at_most("limit", self.limit, MAX_COUNT, "questions")
        problems += _at_most("batch_size", self.batch_size, MAX_BATCH, "sequences per pass")
        for name, value in self.budget.to_dict().items():
            if not math.isfinite(value):
                problems.append(f"budget.{name}: expected a finite number, found {value!r}")
        problems += _positive("budget.max_perplexity_ratio", self.budget.max_perplexity_ratio)
        for name in ("max_builtin_accuracy_drop", "max_generation_drop"):
            if getattr(self.budget, name) < 0:
                problems.append(
                    f"budget.{name}: expected a value >= 0, found {getattr(self.budget, name)!r}"
                )
        return problems


CRON_FIELD_RE = re.compile(r"^[0-9*/,\-]+$")


@dataclass(frozen=True)
class ScheduleEntry(_Checked):
    """One cron trigger that submits a Ray job."""

    name: str
    cron: str
    job_config: str
    timezone: str = "UTC"
    job: Literal["pipeline", "collect", "fit", "publish", "evaluate"] = "pipeline"
    address: str = "http://127.0.0.1:8265"

    def _problems(self) -> list[str]:
        import datetime as dt

        # Here, not at module level: the schedule package imports this module.
        from sea_dist.schedule.cron import CronExpression

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


@dataclass(frozen=True)
class ScheduleConfig(_Checked):
    """Scheduled refits."""

    schedules: tuple[ScheduleEntry, ...] = ()
    history: str = "sea-runs/schedule-history.parquet"

    def _problems(self) -> list[str]:
        names = [entry.name for entry in self.schedules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            return [
                f"schedules: expected unique names, found {excerpt(duplicates)} more than once; "
                "rename the duplicates"
            ]
        return []


@dataclass(frozen=True)
class SeaConfig(_Checked):
    """The whole configuration of a sea-dist run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


T = TypeVar("T")
_INVALID = object()
INT_LIMIT = 2**63 - 1
"""No config integer is larger (it would overflow int64 in numpy, zarr and Ray)."""
FLOAT_LIMIT = 1e300


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    """Convert YAML data ``value`` to type ``tp``; record problems instead of raising."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, path, problems)
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            scratch: list[str] = []
            converted = _convert(arg, value, path, scratch)
            if not scratch:
                return converted
    elif origin is Literal:
        if value in get_args(tp):
            return value
    elif origin is tuple:
        if isinstance(value, list | tuple):
            (item_type, _ellipsis) = get_args(tp)
            items = [_convert(item_type, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
            return tuple(items)
    elif origin is dict:
        key_type, value_type = get_args(tp)
        if isinstance(value, dict) and all(isinstance(k, key_type) for k in value):
            return {
                k: _convert(value_type, v, f"{path}.{_key_text(k)}", problems)
                for k, v in value.items()
            }
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) <= INT_LIMIT:
                return value
            problems.append(
                f"{path}: expected an integer of at most {INT_LIMIT}, found {excerpt(value)}"
            )
            return _INVALID
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            # NaN and inf pass every '<' check below; int -> float can overflow (1e400).
            number = float(value) if abs(value) <= FLOAT_LIMIT else math.inf
            if math.isfinite(number):
                return number
            problems.append(f"{path}: expected a finite number, found {excerpt(value)}")
            return _INVALID
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a config field with a type this converter does not know
        raise TypeError(f"unsupported config type {tp!r}")
    problems.append(f"{path}: expected {_type_name(tp)}, found {excerpt(value)}")
    return _INVALID


def _key_text(key: Any) -> str:
    """A mapping key as it appears in a field path (short, whatever the key is)."""
    return key if isinstance(key, str) and len(key) <= 60 else excerpt(key, 60)


def _build(cls: type[T], data: Any, path: str, problems: list[str]) -> T:
    prefix = f"{path}." if path else ""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{path or 'config'}: expected a mapping, found {excerpt(data)}")
        return typing.cast(T, _INVALID)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            problems.append(
                f"{prefix}{_key_text(key)}: unknown key; expected one of {', '.join(sorted(known))}"
            )
    kwargs: dict[str, Any] = {}
    before = len(problems)
    for name in known:
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{prefix}{name}", problems)
        elif (
            known[name].default is dataclasses.MISSING
            and known[name].default_factory is dataclasses.MISSING
        ):
            problems.append(f"{prefix}{name}: expected {_type_name(hints[name])}, found nothing")
    if len(problems) > before:
        return typing.cast(T, _INVALID)
    try:
        return cls(**kwargs)
    except ConfigError as error:
        problems.extend(f"{prefix}{p}" for p in error.problems)
        return typing.cast(T, _INVALID)


def config_from_dict(data: Any, cls: type[T] = SeaConfig) -> T:  # type: ignore[assignment]
    """Build a config of type ``cls`` from plain data, raising one ConfigError with all problems."""
    problems: list[str] = []
    result = _build(cls, data, "", problems)
    if problems:
        raise ConfigError(problems)
    return result


def load_config(path: str | Path) -> SeaConfig:
    """Read and validate a YAML config file.

    Raises:
        ConfigError: the file is missing, is not YAML, or holds invalid values.
    """
    return config_from_dict(read_config_document(path), SeaConfig)


def read_config_document(path: str | Path) -> Any:
    """The parsed YAML document of a config file, not yet validated.

    Study commands read their own sections (``tune``, ``twofold``) from the same file.

    Raises:
        ConfigError: the file is missing or is not YAML, is over the size, depth or alias
            expansion limits, or gives a key twice (see :mod:`sea_dist.config_yaml`).
    """
    # Here, not at module level: the edit module imports config without PyYAML.
    from sea_dist.config_yaml import read_yaml_file

    return read_yaml_file(path)


def check_run_preconditions(
    config: SeaConfig, evaluate: bool = True, overwrite_store: bool = False
) -> None:
    """Refuse, before any work starts, a run whose later stages are sure to fail.

    ``sea-dist run`` (and ``run_pipeline``) call this first: collection and fitting take minutes
    to hours, and a publish target that cannot be written must not be found out after them.
    Checks that the publish registry is a writable kind of location (a folder or an fsspec URL,
    not the read-only ``http://`` API), that every fsspec protocol is known, that no local
    output location is a file or lies below one, and that the store URL holds a store or
    nothing (:func:`~sea_dist.store.target.check_store_target`).

    Args:
        config: the run's validated config.
        evaluate: the run will evaluate (``evaluate.out`` is written).
        overwrite_store: the run may replace an existing store (``--overwrite-store``).

    Raises:
        ConfigError: one line per problem, naming the field and the fix.
        StoreError: the store URL holds something that is not a store.
    """
    problems = []
    registry = config.publish.registry
    if registry.startswith(("http://", "https://")):
        problems.append(
            f"publish.registry: expected a folder or fsspec URL to publish into, found "
            f"{excerpt(registry)}; the HTTP API of 'sea-dist registry serve' is read-only, "
            "give the registry's storage folder or URL (e.g. s3://bucket/registry)"
        )
    outputs = [
        ("store.url", config.store.url),
        ("fit.out", config.fit.out),
        ("publish.registry", registry),
    ]
    if evaluate:
        outputs.append(("evaluate.out", config.evaluate.out))
    for label, url in outputs:
        problems += _location_problems(label, url)
    # Written as local folders (atomically, by rename): a URL would become a local "s3:/..."
    for label, url in (("fit.out", config.fit.out), ("evaluate.out", config.evaluate.out)):
        if "://" in url and (label == "fit.out" or evaluate):
            problems.append(
                f"{label}: expected a local folder, found the URL {excerpt(url)}; the fit and "
                "the report are written locally: publish to a registry on object storage"
            )
    if problems:
        raise ConfigError(problems)
    from sea_dist.store.target import check_store_target

    check_store_target(config.store.url, overwrite_store or config.store.overwrite)


def _location_problems(label: str, url: str) -> list[str]:
    """Why ``url`` cannot become a folder that a run writes (empty list when it can)."""
    if url.startswith(("http://", "https://")):
        return []  # reported above for the registry; other http outputs fail in fsspec
    if "://" in url:
        import fsspec  # here: the edit module imports config without fsspec

        protocol = url.split("://", 1)[0]
        try:
            fsspec.get_filesystem_class(protocol)
        except (ValueError, ImportError) as error:
            return [
                f"{label}: expected a folder or a known fsspec URL, found {excerpt(url)} "
                f"({' '.join(str(error).split())[:120]}); fix the URL or install its package"
            ]
        return []
    path = Path(url).expanduser()
    if path.exists() and not path.is_dir():
        return [
            f"{label}: expected a folder, found the file {excerpt(str(path))}; "
            "choose another location"
        ]
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return [
                    f"{label}: expected a location that can become a folder, found "
                    f"{excerpt(str(path))} below the file {excerpt(str(parent))}; "
                    "choose another location"
                ]
            break
    return []


def config_to_dict(config: Any) -> dict[str, Any]:
    """Dump a config to plain JSON/YAML-able data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return typing.cast(dict[str, Any], plain(dataclasses.asdict(config)))


def with_overrides(config: SeaConfig, **sections: dict[str, Any]) -> SeaConfig:
    """Return a copy of ``config`` with fields of some sections replaced, validated again.

    Example: ``with_overrides(cfg, fit={"centre": False})``.
    """
    data = config_to_dict(config)
    for section, values in sections.items():
        if section not in data:
            raise ConfigError(f"{section}: unknown section; expected one of {', '.join(data)}")
        data[section].update(values)
    return config_from_dict(data, SeaConfig)
