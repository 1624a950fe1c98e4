"""The collector: loads the model once, records shards and writes them into the store itself.

:class:`ShardCollector` is a plain class (usable and testable without Ray); ``CollectorActor`` is
the same class as a Ray actor. The actor writes its shard directly into the store, opened by URL
in the actor's process, and returns only a small :class:`ShardResult`: activations never travel
through the driver, and exactly one process writes each chunk (the driver hands a shard to one
actor at a time). The completion marker (the sha256 of every chunk written, then the done flag)
is written after the data by :meth:`ActivationStore.write_shard`, which also refuses non-finite
activations with the row and layer named (a :class:`StoreError`: the driver stops at once, since
recording the shard again would give the same values).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import ray
import torch
import transformers

from sea_dist.collect.record import ActivationRecorder, record_options
from sea_dist.config import SeaConfig
from sea_dist.data import Demonstration, demonstrations_fingerprint, make_template
from sea_dist.errors import StoreError
from sea_dist.layers import resolve_layers, site_modules
from sea_dist.models import load_model, tokenizer_fingerprint
from sea_dist.store import ActivationStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectorInfo:
    """What a collector records with: every field of the store identity it can know.

    Attributes mirror :class:`~sea_dist.store.StoreSpec` (``layers`` resolved against the model).
    """

    model_id: str
    model_revision: str
    architecture: str
    d_model: int
    n_model_layers: int
    tokenizer_fingerprint: str
    layers: tuple[int, ...]
    demonstrations_fingerprint: str
    n_rows: int
    host: str

    def identity(self) -> dict[str, object]:
        """The fields that must agree between collectors and with the store (host excluded)."""
        fields = asdict(self)
        fields.pop("host")
        fields["layers"] = list(self.layers)
        return fields


@dataclass(frozen=True)
class ShardResult:
    """What a collector reports for one finished shard (the data is already in the store).

    Attributes:
        shard: shard index.
        rows: demonstrations recorded.
        tokens: tokens in the recording passes.
        seconds: wall time of the shard in the collector (recording + writing).
        worker: ``host:pid`` of the collector.
    """

    shard: int
    rows: int
    tokens: int
    seconds: float
    worker: str


BeforeWrite = Callable[[int, ActivationStore, int, int], None]
"""A hook run in the collector between recording shard ``shard`` (rows ``start:stop``) and
writing it to ``store``. The fault-tolerance tests pass one that tears a chunk and kills the
collector; it travels to the actors pickled (by value when defined in a test)."""


class ShardCollector:
    """Records shards of a demonstration list with one model and writes them to the store.

    Construction is cheap; the model loads on :meth:`setup` (or the first shard), so the driver
    can create all collectors at once and errors of loading come back as task errors.

    Args:
        config: the run's config; ``model``, ``data`` (template) and ``collect`` are used.
        demos: all demonstrations of the run, in store-row order.
        store_url: URL of the activation store (created by the driver before the first shard).
        torch_threads: intra-op threads for this collector (its CPU share).
        before_write: called in the collector with ``(shard, store, start, stop)`` after a
            shard is recorded and before it is written (see :data:`BeforeWrite`).
    """

    def __init__(
        self,
        config: SeaConfig,
        demos: Sequence[Demonstration],
        store_url: str,
        torch_threads: int = 1,
        before_write: BeforeWrite | None = None,
    ) -> None:
        self.config = config
        self.before_write = before_write
        self.demos = list(demos)
        self.store_url = store_url
        self.torch_threads = max(1, int(torch_threads))
        self.recorder: ActivationRecorder | None = None
        self.info: CollectorInfo | None = None
        self.store: ActivationStore | None = None
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def setup(self) -> CollectorInfo:
        """Load the model (once) and describe what this collector records."""
        if self.info is not None:
            return self.info
        torch.set_num_threads(self.torch_threads)
        # One collector per core would print one weight-loading bar each into the driver's log.
        transformers.utils.logging.disable_progress_bar()
        loaded = load_model(self.config.model)
        collect = self.config.collect
        layers = resolve_layers(collect.layers, loaded.n_layers)
        sites = site_modules(loaded.model, layers, collect.site, collect.site_template)
        template = make_template(self.config.data, loaded.tokenizer)
        self.recorder = ActivationRecorder(
            loaded.model, loaded.tokenizer, sites, template, record_options(self.config)
        )
        self.info = CollectorInfo(
            model_id=loaded.model_id,
            model_revision=loaded.revision,
            architecture=loaded.architecture,
            d_model=loaded.d_model,
            n_model_layers=loaded.n_layers,
            tokenizer_fingerprint=tokenizer_fingerprint(loaded.tokenizer),
            layers=layers,
            demonstrations_fingerprint=demonstrations_fingerprint(self.demos, template),
            n_rows=len(self.demos),
            host=socket.gethostname(),
        )
        log.info("collector %s ready (%d threads)", self.worker, self.torch_threads)
        return self.info

    def _open_store(self, info: CollectorInfo) -> ActivationStore:
        if self.store is None:
            store = ActivationStore.open(self.store_url, mode="r+")
            attrs = store.spec.to_attrs()
            diffs = [k for k, v in info.identity().items() if attrs.get(k) != v]
            if diffs:
                key = diffs[0]
                raise StoreError(
                    f"store {self.store_url!r} {key}: expected {info.identity()[key]!r} "
                    f"(collector {self.worker}), found {attrs.get(key)!r}; every node must load "
                    "the same model and demonstrations"
                )
            self.store = store
        return self.store

    def run_shard(self, shard: int) -> ShardResult:
        """Record shard ``shard`` and write it (data, then completion marker) into the store."""
        started = time.perf_counter()
        info = self.setup()
        store = self._open_store(info)
        start, stop = store.spec.shard_rows(shard)
        demos = self.demos[start:stop]
        assert self.recorder is not None  # set by setup()
        recorded = self.recorder.record(demos)
        if self.before_write is not None:
            self.before_write(shard, store, start, stop)
        store.write_shard(
            shard,
            recorded.arrays(),
            [d.id for d in demos],
            recorded.generated,
            recorded.n_tokens,
        )
        return ShardResult(
            shard=shard,
            rows=stop - start,
            tokens=int(recorded.n_tokens.sum()),
            seconds=time.perf_counter() - started,
            worker=self.worker,
        )

    def ping(self) -> str:
        """Liveness check; returns ``host:pid``."""
        return self.worker


# One actor per GPU / CPU slot; resources and restarts are set by the driver with .options().
CollectorActor = ray.remote(ShardCollector)
