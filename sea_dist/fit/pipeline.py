"""``fit_store``: activation store in, SEA projections (and optionally a fit folder) out."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sea_dist.config import FitConfig
from sea_dist.errors import FitError, expected_found
from sea_dist.feature_maps import FeatureMap
from sea_dist.fit.partitions import memory_budget
from sea_dist.fit.projections import fit_layer
from sea_dist.fit.result import FitResult, LayerProjection, check_output_dir, now_utc
from sea_dist.fit.schedulers import open_scheduler
from sea_dist.fit.svd import choose_path, use_device
from sea_dist.store import ActivationStore, StoreSpec

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def fit_store(
    store_url: str,
    config: FitConfig | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    *,
    progress: bool = False,
    partitions: int | None = None,
    layers: Sequence[int] | None = None,
    device: str | None = None,
) -> FitResult:
    """Fit SEA projections for every layer of a complete activation store.

    One Dask pass computes the layers' statistics (float64, or float32 products summed in float64
    with ``precision: mixed``; memory independent of N), in groups of layers sized to memory
    (:func:`layer_groups`); then each layer's Omega+ and Omega- go through the SVD path chosen by
    ``config.svd``.

    Args:
        store_url: activation store (local folder or fsspec URL).
        config: fit settings; default ``FitConfig()``.
        out: write the fit folder here (atomically); None keeps the result in memory only.
        overwrite: replace a non-empty ``out``.
        progress: show one progress bar ``fit``: the pass's tasks (local schedulers), then one
            step per layer's SVDs.
        partitions: row partitions per layer in the pass (None: automatic).
        layers: fit only these recorded layers (model layer numbers); None fits all of them.
        device: overrides ``config.device``; also takes ``torch-cpu`` (the torch device code on
            the CPU, for tests and benchmarks; not a config value). See
            :mod:`sea_dist.fit.torch_ops`.

    Returns:
        The fitted projections.

    Raises:
        StoreError: the store is missing, incomplete or damaged: attributes that disagree with
            the arrays, a chunk missing or changed since its shard was written (checked against
            the digests of the shard's completion marker as the pass reads it), a non-finite
            activation (row and layer named).
        FitError: bad settings for this store, a non-empty ``out``, or constant activations.
        ConfigError: a CUDA device is configured and not visible.
    """
    from tqdm.auto import tqdm

    from sea_dist.fit.streaming import compute_moments

    config = config or FitConfig()
    store = ActivationStore.open(store_url)  # attributes checked against the arrays
    markers = store.require_complete()
    if markers.unchecked:
        log.warning(
            "store %s: %d of %d shards were written before shard digests existed, so their "
            "chunks cannot be checked against what was written (missing chunks and non-finite "
            "values still are); 'sea-dist store verify %s' checks what can be, re-collecting "
            "adds digests",
            store_url,
            len(markers.unchecked),
            store.spec.n_shards,
            store_url,
        )
    spec = store.spec
    selected = _select_layers(spec, layers)
    feature_map = FeatureMap(config.feature_map, config.feature_map_scale)
    path = choose_path(config.svd, spec.d_model, spec.n_rows)
    _check_sizes(config, spec.n_rows, spec.d_model, path)
    if out is not None:
        check_output_dir(out, overwrite)  # refuse before the expensive part
    torch_device = _torch_device(device or config.device)

    checks = store.layer_checks(markers)
    # Layers go through the pass in groups sized to memory: the pass returns each layer's
    # statistics (2 d^2 float64, or the rows on the thin-QR path) and they wait for their SVDs,
    # so 80 layers at d = 8192 in one pass would hold 80 GiB. Each group's SVDs free its
    # statistics before the next group is read (the store is chunked by layer: no re-reads).
    groups = layer_groups(selected, layer_result_bytes(spec, path == "qr"))
    # One bar for the stage: the pass's Dask tasks are added to it when the pass starts.
    bar = tqdm(total=len(selected), desc="fit", unit="step", disable=not progress)
    projections: list[LayerProjection] = []
    pass_seconds = svd_seconds = 0.0
    on_device = torch_device is not None and path != "qr"
    try:
        # One scheduler for every group: opening a distributed client or a Ray connection per
        # group would repeat the connection for nothing.
        with ExitStack() as stack:
            scheduler = None if on_device else stack.enter_context(open_scheduler(config.scheduler))
            for group in groups:
                started = time.perf_counter()
                if scheduler is None:  # the pass on a torch device
                    assert torch_device is not None
                    moments = _device_pass(
                        store_url, spec, torch_device, config, group, checks, bar
                    )
                else:
                    with _pass_progress(bar, scheduler.local):
                        bar.set_postfix_str("statistics pass", refresh=False)
                        moments = compute_moments(
                            store_url,
                            spec,
                            scheduler,
                            map_name=feature_map.name,
                            scale=feature_map.scale,
                            keep_rows=path == "qr",
                            chunk_rows=config.chunk_rows,
                            partitions=partitions,
                            layers=group,
                            checks=checks,
                            precision=config.precision,
                        )
                group_seconds = time.perf_counter() - started
                pass_seconds += group_seconds
                # benchmarks/fit_scaling.py times the pass from this line
                log.debug("statistics pass done in %.2fs (layers %s)", group_seconds, list(group))
                started = time.perf_counter()
                projections += _fit_layers(group, moments, config, path, torch_device, bar)
                svd_seconds += time.perf_counter() - started
    finally:
        bar.close()  # also on an error, so its message starts on a line of its own
    result = FitResult(
        layers=tuple(projections),
        config=config,
        store_url=store_url,
        store_attrs=store.attrs(),
        feature_map=feature_map,
        created_at=now_utc(),
    )
    if out is not None:
        result.save(out, overwrite=overwrite)
    log.info("%s", fit_line(projections, pass_seconds, svd_seconds, out))
    return result


def layer_result_bytes(spec: StoreSpec, keep_rows: bool) -> int:
    """Bytes one layer's pass result holds until its SVDs: two d x d float64 cross-products
    (plus sums), or on the thin-QR route its three (N, d) float64 row blocks."""
    d = spec.d_model
    return 3 * 8 * spec.n_rows * d if keep_rows else 2 * 8 * d * d + 8 * 8 * d


def layer_groups(
    layers: Sequence[int], result_bytes: int, budget: int | None = None
) -> list[tuple[int, ...]]:
    """Split ``layers`` into consecutive groups whose pass results fit in half of ``budget``
    (the other half is for the pass's running accumulators; see
    :func:`sea_dist.fit.partitions.memory_budget`, the default). At least one layer per group.
    """
    budget = memory_budget() if budget is None else budget
    size = max(1, (budget // 2) // max(1, result_bytes))
    return [tuple(layers[i : i + size]) for i in range(0, len(layers), size)]


def _fit_layers(
    group: Sequence[int],
    moments: dict[int, Any],
    config: FitConfig,
    path: Any,
    torch_device: torch.device | None,
    bar: Any,
) -> list[LayerProjection]:
    """The SVDs of one group's layers, freeing each layer's statistics as it goes."""
    projections = []
    for layer in group:
        bar.set_postfix_str(f"SVD layer {layer}", refresh=False)
        started = time.perf_counter()
        with use_device(torch_device):  # exact/randomized SVDs on the device
            projection = fit_layer(layer, moments.pop(layer), config, path)
        bar.update(1)
        log.debug(
            "layer %d: %s SVD, k+=%d (energy %.4f), k-=%d (energy %.4f), signature %.4g, %.2fs",
            layer,
            projection.svd_path,
            projection.k_pos,
            projection.energy_pos,
            projection.k_neg,
            projection.energy_neg,
            projection.signature,
            time.perf_counter() - started,
        )
        projections.append(projection)
    return projections


def fit_line(
    projections: Sequence[LayerProjection],
    pass_seconds: float,
    svd_seconds: float,
    out: str | Path | None,
) -> str:
    """The one-line summary of a fit: layers, SVD paths, k ranges, times, where it was written."""
    paths = "/".join(sorted({p.svd_path for p in projections}))
    k_pos = [p.k_pos for p in projections]
    k_neg = [p.k_neg for p in projections]
    where = f" -> {out}" if out is not None else ""
    return (
        f"fit: {len(projections)} layer(s), {paths} SVD, k+ {min(k_pos)}..{max(k_pos)}, "
        f"k- {min(k_neg)}..{max(k_neg)}; statistics pass {pass_seconds:.2f} s, SVDs "
        f"{svd_seconds:.2f} s{where}"
    )


def _pass_progress(bar: Any, local: bool) -> Any:
    """A Dask callback that counts the pass's finished tasks on ``bar`` (local schedulers only:
    Dask's callbacks run where the tasks are scheduled), else a no-op context."""
    from dask.callbacks import Callback

    if not local or bar.disable:
        return nullcontext()

    class _BarCallback(Callback):
        def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
            tasks = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
            bar.total += tasks
            bar.refresh()

        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker: Any) -> None:
            bar.update(1)

    return _BarCallback()


def _torch_device(name: str) -> torch.device | None:
    """The resolved ``fit.device`` (None: numpy); torch is imported only for a device."""
    if name == "cpu":
        return None

    from sea_dist.fit.torch_ops import resolve_device  # a CPU fit loads no torch

    return resolve_device(name)


def _device_pass(
    url: str,
    spec: StoreSpec,
    device: torch.device,
    config: FitConfig,
    selected: Sequence[int],
    checks: Mapping[int, Any],
    bar: Any,
) -> dict[int, Any]:
    """The statistics pass on a torch device (:func:`sea_dist.fit.torch_ops.store_moments`)."""
    from sea_dist.fit.streaming import block_ranges
    from sea_dist.fit.torch_ops import store_moments

    bar.set_postfix_str(f"statistics pass ({device})", refresh=False)
    blocks = block_ranges(spec.n_rows, spec.rows_per_shard, spec.d_model, config.chunk_rows)
    bar.total += len(blocks) * len(selected)
    return store_moments(
        url,
        spec,
        device,
        map_name=config.feature_map,
        scale=config.feature_map_scale,
        chunk_rows=config.chunk_rows,
        precision=config.precision,
        layers=selected,
        checks=checks,
        on_block=lambda: bar.update(1),
    )


def _select_layers(spec: StoreSpec, layers: Sequence[int] | None) -> tuple[int, ...]:
    """The recorded layers to fit, in store order."""
    if layers is None:
        return spec.layers
    if not layers or any(layer not in spec.layers for layer in layers):
        raise FitError(
            expected_found("layers", f"a non-empty subset of {list(spec.layers)}", list(layers))
        )
    return tuple(layer for layer in spec.layers if layer in layers)


def _check_sizes(config: FitConfig, n_rows: int, d: int, path: str) -> None:
    if config.centre and n_rows < 2:
        raise FitError(
            expected_found(
                "store rows",
                "at least 2 to centre",
                n_rows,
                "collect more demonstrations or pass --no-centre",
            )
        )
    bound = min(n_rows, d) if path == "qr" else d
    if config.fixed_k is not None and config.fixed_k > bound:
        raise FitError(
            expected_found(
                "fixed_k",
                f"<= {bound} ({'min(N, d)' if path == 'qr' else 'd'})",
                config.fixed_k,
                "lower --fixed-k",
            )
        )
