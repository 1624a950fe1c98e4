"""The sections of a run config that say what to record and how: model, data, collect, store, fit.

Each is a frozen pydantic dataclass (see :mod:`sea_dist.config.checked`): field types are
checked strictly (no bool for an int, no string for a number), and ``_problems()`` adds the
checks across fields and ranges, one ``field: expected X, found Y`` line each. The attribute
docstrings are the descriptions of ``sea-dist config schema``.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from pydantic.dataclasses import dataclass

from sea_dist.config.checked import SECTION, Bool, Checked, Float, Int, Layers, Str, checked
from sea_dist.config.spec import (
    DEMO_MODEL_ID,
    DEVICE_RE,
    FIT_DEVICE_RE,
    MAX_BATCH,
    MAX_COUNT,
    MAX_NEW_TOKENS,
    MAX_ROWS_PER_SHARD,
    SITES,
    at_least_zero,
    at_most,
    check_layers,
    positive,
)
from sea_dist.errors import excerpt


@checked
@dataclass(frozen=True, config=SECTION)
class ModelConfig(Checked):
    """Which causal LM to load and where to run it."""

    id: Str = DEMO_MODEL_ID
    """Local HF folder, hub id, path to a ``.gguf`` file, or ``smollm2-135m-instruct`` (demo)."""
    revision: Str | None = None
    """Hub revision (branch, tag or commit) of a hub id."""
    gguf_file: Str | None = None
    """A ``.gguf`` file inside the folder ``id`` names, converted and loaded."""
    device: Str = "cpu"
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights and activations dtype of the loaded model."""
    cache_dir: Str | None = None
    """Where converted models are cached; unset: ``$SEA_DIST_CACHE`` (read by the ``sea-dist``
    CLI and the Ray jobs), else ``~/.cache/sea-dist``. This setting wins over the variable."""

    def _problems(self) -> list[str]:
        problems = []
        if not self.id.strip():
            problems.append("id: expected a model id or path, found ''")
        if not DEVICE_RE.match(self.device):
            problems.append(
                f"device: expected cpu, auto, cuda or cuda:N, found {excerpt(self.device)}"
            )
        return problems


@checked
@dataclass(frozen=True, config=SECTION)
class DataConfig(Checked):
    """Where the demonstrations come from and how prompts are rendered."""

    source: Literal["builtin", "truthfulqa", "bbq", "halueval", "jsonl", "csv", "parquet"] = (
        "builtin"
    )
    """Demonstration source: the built-in set, a benchmark, or a generic table file."""
    path: Str | None = None
    """File to read; for truthfulqa/bbq, default: the benchmark file found in the data
    locations (``data_dir``, the data cache, ../shared/data), else fetched."""
    limit: Int | None = None
    """Use at most this many demonstrations."""
    positive: Str = "best"
    """TruthfulQA: ``best`` (Best Answer) or ``first`` (first Correct Answer)."""
    negative: Str = "first"
    """TruthfulQA: ``first`` incorrect answer (or ``last``)."""
    columns: dict[Str, Str] = field(default_factory=dict)
    """Generic loaders: map schema field (id/prompt/positive/negative) to a column name."""
    template: Literal["qa", "chat"] = "qa"
    """Prompt rendering: plain question/answer, or the model's chat template."""
    few_shot: Bool = False
    """Prefix each prompt with a few fixed question/answer examples."""
    system_prompt: Str | None = None
    """System message of the chat template."""
    holdout: Float = 0.0
    """Share of the demonstrations (after ``limit``) kept out of the fit, chosen by a hash of
    each id; with ``source: builtin`` the ``builtin`` evaluation and the gate's damage check
    score that part, so their accuracy is held out, not in-sample."""
    data_dir: Str | None = None
    """Folder of the benchmark files, searched after ``evaluate.data_dir``; unset:
    ``$SEA_DIST_DATA_DIR`` (read by the ``sea-dist`` CLI and the Ray jobs), else none. This
    setting wins over the variable."""
    cache_dir: Str | None = None
    """The data cache that ``sea-dist data fetch`` and automatic fetching fill; unset:
    ``$SEA_DIST_DATA_CACHE``, else ``$SEA_DIST_CACHE/data``, else ``~/.cache/sea-dist/data``.
    This setting wins over the variables."""
    fetch: Bool | None = None
    """Download a missing pinned benchmark file (once per run); unset: false when
    ``$SEA_DIST_DATA_FETCH`` is never/0/off/no, else true. This setting wins over the variable."""
    source_url: Str | None = None
    """Base URL of a mirror of the pinned benchmark sources (same layout); unset:
    ``$SEA_DIST_DATA_SOURCE_URL``, else the pinned revision. This setting wins over the
    variable."""

    def _problems(self) -> list[str]:
        problems = positive("limit", self.limit)
        if not 0.0 <= self.holdout <= 0.5:
            problems.append(f"holdout: expected a share in [0, 0.5], found {self.holdout!r}")
        problems += at_most("limit", self.limit, MAX_COUNT, "demonstrations")
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


@checked
@dataclass(frozen=True, config=SECTION)
class CollectConfig(Checked):
    """What activations to record and how the Ray collection is laid out."""

    layers: Layers = "all"
    """``all``, ``last-L``, ``first-L``, ``last-P%`` or a list of 0-based decoder layers."""
    site: Str = "residual"
    """``residual`` (decoder block output), ``mlp`` (MLP output) or ``attn`` (attention output)."""
    site_template: Str | None = None
    """Override: module path with ``{layer}``, e.g. ``model.layers.{layer}.mlp``."""
    token: Literal["last", "mean"] = "last"
    """``last`` token, or ``mean`` over the completion tokens."""
    neutral: Literal["generate", "prompt"] = "generate"
    """Neutral activations: ``generate`` (greedy generation) or ``prompt`` (last prompt token)."""
    max_new_tokens: Int = 16
    """Tokens generated for each neutral answer."""
    batch_size: Int = 8
    """Sequences per forward pass."""
    rows_per_shard: Int = 64
    """Demonstrations per Zarr chunk (the unit of work of one actor task)."""
    num_actors: Int = 0
    """0 = one actor per GPU, or per CPU slot on CPU-only clusters."""
    num_gpus_per_actor: Float = 0.0
    """0 = use one GPU per actor when the cluster has GPUs."""
    max_in_flight: Int = 2
    """Shards queued per actor (bounded ``ray.wait`` window)."""
    max_retries: Int = 3
    """Retries of a failed shard before the collection fails."""
    ray_address: Str | None = None
    """Ray cluster to join; default ``$RAY_ADDRESS``, else a local cluster."""

    def _problems(self) -> list[str]:
        problems = check_layers("layers", self.layers)
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
            problems += positive(name, getattr(self, name))
        problems += at_most("max_new_tokens", self.max_new_tokens, MAX_NEW_TOKENS, "tokens")
        problems += at_most("batch_size", self.batch_size, MAX_BATCH, "sequences per pass")
        problems += at_most(
            "rows_per_shard", self.rows_per_shard, MAX_ROWS_PER_SHARD, "rows per Zarr chunk"
        )
        problems += at_most("max_in_flight", self.max_in_flight, 1024, "shards per actor")
        problems += at_most("num_actors", self.num_actors, 100_000, "actors")
        problems += at_most("max_retries", self.max_retries, 1000, "retries per shard")
        problems += at_most("num_gpus_per_actor", self.num_gpus_per_actor, 1024, "GPUs")
        problems += at_least_zero("num_actors", self.num_actors)
        problems += at_least_zero("max_retries", self.max_retries)
        problems += at_least_zero("num_gpus_per_actor", self.num_gpus_per_actor)
        return problems


@checked
@dataclass(frozen=True, config=SECTION)
class StoreConfig(Checked):
    """Activation store location and encoding."""

    url: Str = "sea-runs/store.zarr"
    """Local folder or any fsspec URL."""
    dtype: Literal["float32", "float16"] = "float32"
    """Dtype of the stored activations."""
    codec: Literal["zstd", "blosc", "gzip", "none"] = "zstd"
    """Compression of the Zarr chunks."""
    overwrite: Bool = False
    """Replace an incompatible existing store instead of refusing it."""

    def _problems(self) -> list[str]:
        return [] if self.url.strip() else ["url: expected a folder or fsspec URL, found ''"]


@checked
@dataclass(frozen=True, config=SECTION)
class FitConfig(Checked):
    """How cross-covariances and projections are computed."""

    out: Str = "sea-runs/fit"
    """Local folder the fitted projections are written to."""
    centre: Bool = True
    """Subtract the means before the cross-covariances."""
    positive_energy: Float = 0.99
    """K+: keep the smallest k whose captured energy of Omega+ reaches this ratio."""
    negative_energy: Float = 0.99
    """K-: same for Omega-."""
    fixed_k: Int | None = None
    """Use exactly this k for both projections instead of the energy rule."""
    svd: Literal["auto", "exact", "qr", "randomized"] = "auto"
    """SVD algorithm (``auto`` picks by size)."""
    feature_map: Literal["linear", "tanh", "elu", "sqexp"] = "linear"
    """Phi-SEA: the invertible map applied to activations before the fit."""
    feature_map_scale: Float = 1.0
    """tanh/elu input scale, or the squared-exponential length scale."""
    combine: Literal["l2", "average"] = "l2"
    """``l2`` (norm restored per token) or ``average`` of the two projected activations."""
    scheduler: Str = "threads"
    """``threads``, ``synchronous``, ``ray`` or a ``distributed`` address (``tcp://host:port``)."""
    chunk_rows: Int = 4096
    """Rows per block of the statistics pass."""
    precision: Literal["float64", "mixed"] = "float64"
    """Statistics pass products: ``float64``, or ``mixed`` (float32 GEMMs summed into float64
    per block, rows shifted by a per-partition mean first; measured at d = 4096, N = 20000: about
    1.5x less CPU than float64, cross-covariances within 1e-7 of it)."""
    device: Str = "cpu"
    """Where the statistics pass and SVDs run: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (torch on
    a CUDA device when one is visible)."""
    oversample: Int = 10
    """Randomized SVD: extra directions sampled."""
    power_iterations: Int = 2
    """Randomized SVD: power iterations."""
    seed: Int = 0
    """Randomized SVD: random seed."""

    def _problems(self) -> list[str]:
        problems = []
        for name in ("positive_energy", "negative_energy"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                problems.append(f"{name}: expected an energy threshold in (0, 1], found {value!r}")
        problems += positive("fixed_k", self.fixed_k)
        problems += at_most("fixed_k", self.fixed_k, 1_000_000, "directions")
        problems += positive("feature_map_scale", self.feature_map_scale)
        problems += at_most("feature_map_scale", self.feature_map_scale, 1e6, "input scale")
        problems += positive("chunk_rows", self.chunk_rows)
        problems += at_most("chunk_rows", self.chunk_rows, 100_000_000, "rows per block")
        problems += at_most("oversample", self.oversample, 100_000, "extra directions")
        problems += at_most("power_iterations", self.power_iterations, 1000, "iterations")
        if self.seed < 0:
            problems.append(f"seed: expected an integer >= 0, found {self.seed}")
        if self.oversample < 0 or self.power_iterations < 0:
            problems.append(
                "oversample/power_iterations: expected >= 0, "
                f"found {self.oversample}/{self.power_iterations}"
            )
        if not FIT_DEVICE_RE.match(self.device):
            problems.append(
                f"device: expected cpu, auto, cuda or cuda:N, found {excerpt(self.device)}"
            )
        if not (
            self.scheduler in ("threads", "synchronous", "processes", "ray")
            or self.scheduler.startswith(("tcp://", "tls://", "inproc://"))
        ):
            problems.append(
                "scheduler: expected threads, synchronous, ray or tcp://host:port, "
                f"found {self.scheduler!r}"
            )
        return problems
