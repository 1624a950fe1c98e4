"""Schedule shards over collector actors: bounded in-flight window, retries, resume, progress.

The driver loads the demonstrations, starts one collector per GPU (or per CPU slot), asks each to
describe what it records, creates or reopens the store (refusing an incompatible one), then hands
out the pending shards with at most ``collect.max_in_flight`` queued per actor, draining results
with ``ray.wait``. A collector that dies (process killed, node lost) is replaced and its shards
are re-queued; a shard that keeps failing stops the run after ``collect.max_retries`` retries
(a dead collector's failure counts against the shard it was running, not the ones queued behind
it). Completed shards carry a marker in the store (content digests, then a done flag), so
re-running the same config resumes and redoes exactly the shards without a complete marker.

The console stays quiet: the driver converts a model that needs it (demo model, GGUF) before the
collectors start, so they only read the cached folder; collectors run with progress bars off
(their output is forwarded line by line to the driver, where a bar would print one line per
update; Ray's deduplication then folds the lines several collectors repeat); the run shows one
progress bar and ends with one summary line (:meth:`CollectSummary.line`).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError
from tqdm import tqdm

from sea_dist.collect.actor import BeforeWrite, CollectorActor, CollectorInfo, ShardResult
from sea_dist.collect.layout import ActorLayout, plan_actors
from sea_dist.collect.summary import CollectSummary, store_size
from sea_dist.config import SeaConfig
from sea_dist.data import Demonstration, load_demonstrations
from sea_dist.errors import ClusterError, SeaDistError, expected_found
from sea_dist.outputs import anchored
from sea_dist.provision import prepare_model
from sea_dist.store import ActivationStore, StoreSpec
from sea_dist.store.target import check_store_target

log = logging.getLogger(__name__)

ACTOR_PREFIX = "sea-dist-collector-"
QUIET_ACTOR_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
"""Set in every collector: no progress bars (tqdm's and the hub's) in processes whose output is
forwarded to the driver line by line."""


class CollectError(SeaDistError):
    """Collection cannot finish: a shard failed more often than ``collect.max_retries`` allows."""


def normalise_url(url: str) -> str:
    """Absolute path for local stores (actors may run with another working directory)."""
    return url if "://" in url else os.path.abspath(os.path.expanduser(url))


def store_spec(config: SeaConfig, info: CollectorInfo) -> StoreSpec:
    """The store identity of a run, from the config and a collector's description.

    What the collector found (model, tokenizer, resolved layers, demonstrations) is taken whole:
    :class:`CollectorInfo` mirrors those :class:`StoreSpec` fields by name. The rest is what the
    config asked for.
    """
    found = dataclasses.asdict(info)
    del found["host"]  # where a collector ran is no part of the store's identity
    c = config.collect
    return StoreSpec(
        **found,
        site=c.site,
        site_template=c.site_template,
        token=c.token,
        neutral=c.neutral,
        max_new_tokens=c.max_new_tokens,
        rows_per_shard=c.rows_per_shard,
        dtype=config.store.dtype,
        codec=config.store.codec,
    )


def _task_cause(error: RayTaskError) -> BaseException:
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


class ShardScheduler:
    """Runs the pending shards of one store over a pool of collector actors.

    Args:
        config: the run's config.
        demos_ref: object ref of the demonstration list (shared by all actors).
        store_url: normalised store URL.
        layout: the actor layout.
        on_result: called on the driver after each completed shard (progress, tests).
        before_write: run in the collectors before each shard is written (tests inject
            faults with it).
    """

    def __init__(
        self,
        config: SeaConfig,
        demos_ref: Any,
        store_url: str,
        layout: ActorLayout,
        on_result: Callable[[ShardResult], None] | None = None,
        before_write: BeforeWrite | None = None,
    ) -> None:
        self.config = config
        self.before_write = before_write
        self.demos_ref = demos_ref
        self.store_url = store_url
        self.layout = layout
        self.on_result = on_result
        self._options: dict[str, Any] = {
            "num_cpus": layout.num_cpus,
            "num_gpus": layout.num_gpus,
            "max_restarts": 0,  # the driver replaces dead actors itself and re-queues shards
            "runtime_env": {"env_vars": QUIET_ACTOR_ENV},
        }
        self._actor_config = config
        if layout.device != config.model.device:
            self._actor_config = dataclasses.replace(
                config, model=dataclasses.replace(config.model, device=layout.device)
            )
        # Named (sea-dist-collector-<run>-<slot>-<generation>) so `ray list actors` shows them.
        self.run_id = uuid.uuid4().hex[:8]
        self.generation = [0] * layout.num_actors
        self.actors: list[Any] = [self._new_actor(slot) for slot in range(layout.num_actors)]
        self.retried = 0
        self.replaced = 0

    def _new_actor(self, slot: int) -> Any:
        name = f"{ACTOR_PREFIX}{self.run_id}-{slot}-{self.generation[slot]}"
        return CollectorActor.options(name=name, **self._options).remote(
            self._actor_config,
            self.demos_ref,
            self.store_url,
            self.layout.torch_threads,
            self.before_write,
        )

    def describe(self) -> CollectorInfo:
        """Load the model in every actor and check they all record the same thing."""
        try:
            infos: list[CollectorInfo] = ray.get([a.setup.remote() for a in self.actors])
        except RayTaskError as error:
            raise _task_cause(error) from None
        first = infos[0]
        for other in infos[1:]:
            if other.identity() != first.identity():
                diffs = [k for k, v in first.identity().items() if other.identity()[k] != v]
                raise CollectError(
                    f"collectors: expected every node to load the same model and data, found "
                    f"{diffs[0]} differing between {first.host} and {other.host}; use one model "
                    "revision and one data file on all nodes"
                )
        return first

    def _replace(self, slot: int) -> None:
        ray.kill(self.actors[slot], no_restart=True)
        self.generation[slot] += 1
        self.actors[slot] = self._new_actor(slot)
        self.replaced += 1

    def run(self, shards: Sequence[int], progress: Callable[[ShardResult], None]) -> None:
        """Run ``shards`` to completion.

        Raises:
            CollectError: a shard failed ``collect.max_retries + 1`` times.
            SeaDistError: a collector refused its input (bad data, incompatible store): re-raised
                at once, since retrying cannot help.
        """
        c = self.config.collect
        queue = deque(shards)
        failures: dict[int, int] = {}
        load = [0] * len(self.actors)
        # ref -> (shard, slot, generation, submission number)
        in_flight: dict[Any, tuple[int, int, int, int]] = {}
        submitted = itertools.count()
        # (slot, generation) of a dead collector -> the shard it was running. An actor runs its
        # tasks in submission order, so that is its oldest unfinished one; the shards queued
        # behind it are re-queued without a failure counted against them.
        culprits: dict[tuple[int, int], int] = {}

        def fill(slot: int) -> None:
            while queue and load[slot] < c.max_in_flight:
                shard = queue.popleft()
                ref = self.actors[slot].run_shard.remote(shard)
                in_flight[ref] = (shard, slot, self.generation[slot], next(submitted))
                load[slot] += 1

        for slot in range(len(self.actors)):
            fill(slot)
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                shard, slot, generation, number = in_flight.pop(ref)
                if generation == self.generation[slot]:
                    load[slot] -= 1
                try:
                    result: ShardResult = ray.get(ref)  # ready: returns at once
                except RayActorError as error:
                    if generation == self.generation[slot]:
                        same = [v for v in in_flight.values() if v[1:3] == (slot, generation)]
                        running = min(
                            [*same, (shard, slot, generation, number)], key=lambda v: v[3]
                        )
                        culprits[(slot, generation)] = running[0]
                        log.warning(
                            "collector %d died in shard %d (%s); replacing it",
                            slot,
                            running[0],
                            type(error).__name__,
                        )
                        self._replace(slot)
                        load[slot] = 0
                    blamed = culprits.get((slot, generation), shard) == shard
                    self._retry(shard, failures, queue, error, blamed=blamed)
                except RayTaskError as error:
                    cause = _task_cause(error)
                    if isinstance(cause, SeaDistError):
                        raise cause from None
                    log.warning("shard %d failed: %s", shard, str(cause).splitlines()[0])
                    self._retry(shard, failures, queue, error)
                else:
                    progress(result)
                    if self.on_result is not None:
                        self.on_result(result)
                for other in range(len(self.actors)):
                    fill(other)

    def _retry(
        self,
        shard: int,
        failures: dict[int, int],
        queue: deque[int],
        error: Exception,
        blamed: bool = True,
    ) -> None:
        failures[shard] = failures.get(shard, 0) + int(blamed)
        if failures[shard] > self.config.collect.max_retries:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise CollectError(
                f"shard {shard}: expected to succeed within {self.config.collect.max_retries} "
                f"retries, found {failures[shard]} failures (last: {reason}); fix the cause "
                "and re-run: finished shards are kept"
            )
        self.retried += 1
        queue.appendleft(shard)  # retry first, so a poison shard fails fast

    def shutdown(self) -> None:
        """Kill every collector (frees their CPUs/GPUs for the next run)."""
        for actor in self.actors:
            ray.kill(actor, no_restart=True)


def _cluster_nodes() -> list[dict[str, float]]:
    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def _require_ray() -> None:
    """Refuse to run without a Ray connection: connecting is the entry layer's job."""
    if not ray.is_initialized():
        raise ClusterError(
            expected_found(
                "collect: ray.is_initialized()",
                "True (a Ray cluster joined or started by the caller)",
                False,
                "connect first with sea_dist.cli.cluster.init_ray(config.collect.ray_address) "
                "or ray.init(), or run 'sea-dist collect'",
            )
        )


def collect(
    config: SeaConfig,
    *,
    overwrite: bool = False,
    progress: bool = True,
    on_result: Callable[[ShardResult], None] | None = None,
    demos: Sequence[Demonstration] | None = None,
    before_write: BeforeWrite | None = None,
) -> CollectSummary:
    """Collect the activations ``config`` describes into its store (resuming if possible).

    Runs on the Ray cluster this process is connected to; it never starts or joins one itself.
    Connect first: the entry points call :func:`sea_dist.cli.cluster.init_ray` with
    ``collect.ray_address`` (``sea-dist collect``, ``sea-dist run``, ``jobs/collect.py``);
    ``ray.init(...)`` does as well.

    Args:
        config: model, data, collect and store sections are used.
        overwrite: replace an existing store even if it is incompatible
            (``store.overwrite`` does the same).
        progress: show a progress bar (demonstrations/s, tokens/s, ETA).
        on_result: called on the driver after each completed shard.
        demos: the demonstrations to record (default: loaded from ``config.data``).
        before_write: run in each collector between recording a shard and writing it (see
            :data:`~sea_dist.collect.actor.BeforeWrite`; the fault-tolerance tests use it).

    Returns:
        The run's :class:`CollectSummary`.

    Raises:
        StoreError: the store exists with another identity and ``overwrite`` is false, or
            the store URL holds anything but a store (refused before Ray is looked at).
        ClusterError: Ray is not initialised in this process.
        CollectError: a shard kept failing.
    """
    # The entry points anchor store.url to $SEA_DIST_OUTPUT_BASE; this refuses a relative URL
    # that would land in a Ray job's temporary working-directory copy.
    url = normalise_url(anchored(config.store.url, "store.url"))
    # Before Ray is looked at and models load: a location that holds anything but a store
    # is refused here (ActivationStore.create checks again before it writes).
    check_store_target(url, overwrite or config.store.overwrite)
    _require_ray()
    # The driver converts the demo model or a GGUF file once, before the collectors start (a
    # conversion error stops the run here); collectors get the absolute cache and only read it.
    model = prepare_model(config.model)
    if model is not config.model:
        config = dataclasses.replace(config, model=model)
    started = time.perf_counter()
    demonstrations = list(demos) if demos is not None else load_demonstrations(config.data)
    layout = plan_actors(config.collect, config.model.device, _cluster_nodes())
    log.debug(
        "collecting %d demonstrations into %s with %d actors (%g CPUs, %g GPUs each)",
        len(demonstrations),
        url,
        layout.num_actors,
        layout.num_cpus,
        layout.num_gpus,
    )
    scheduler = ShardScheduler(
        config, ray.put(demonstrations), url, layout, on_result, before_write
    )
    try:
        info = scheduler.describe()
        spec = store_spec(config, info)
        store = ActivationStore.create(url, spec, overwrite=overwrite or config.store.overwrite)
        pending = store.pending_shards()
        summary = CollectSummary(
            store_url=url,
            rows=spec.n_rows,
            shards=spec.n_shards,
            num_actors=layout.num_actors,
            shards_skipped=spec.n_shards - len(pending),
        )
        done_rows = spec.n_rows - sum(
            spec.shard_rows(s)[1] - spec.shard_rows(s)[0] for s in pending
        )
        bar = tqdm(
            total=spec.n_rows,
            initial=done_rows,
            unit="demo",
            disable=not progress,
            dynamic_ncols=True,
            smoothing=0.1,
            desc="collect",
        )
        run_started = time.perf_counter()

        def advance(result: ShardResult) -> None:
            summary.results.append(result)
            summary.shards_collected += 1
            summary.rows_collected += result.rows
            summary.tokens += result.tokens
            elapsed = max(time.perf_counter() - run_started, 1e-9)
            bar.update(result.rows)
            bar.set_postfix(tok_s=f"{summary.tokens / elapsed:.0f}", refresh=False)

        try:
            scheduler.run(pending, advance)
        finally:
            bar.close()
    finally:
        scheduler.shutdown()
    summary.shards_retried = scheduler.retried
    summary.actors_replaced = scheduler.replaced
    summary.wall_seconds = time.perf_counter() - started
    summary.store_bytes = store_size(url)
    log.info(summary.line())
    return summary
