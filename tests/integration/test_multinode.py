"""Several Ray nodes, one of them lost in the middle of a run: collection and the Dask-on-Ray fit.

A real multi-node cluster on this host (``ray.cluster_utils.Cluster``): a head with no CPUs (the
driver only) and three worker nodes with one CPU and a resource of their own each, so 1-CPU
collectors and fit tasks can only run on workers and necessarily spread over them. In each
faulty run one worker node is removed (its raylet and workers killed, as when a machine dies)
while it holds work; the run must complete on the remaining nodes and give exactly what an
uninterrupted run on the same cluster gave: the store array for array, the fit to 1e-10.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sea_dist.collect.actor import ShardResult
from sea_dist.collect.driver import ACTOR_PREFIX, collect
from sea_dist.config import FitConfig, SeaConfig, config_from_dict, with_overrides
from sea_dist.fit import FitResult, fit_store
from sea_dist.store import ActivationStore, StoreSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARRAYS = ("neutral", "positive", "negative", "row_ids", "generated", "n_tokens")
ROLES = ("neutral", "positive", "negative")
WORKERS = 3


class MultiNode:
    """The cluster and its worker nodes (``ray._private.node.Node``), by node id."""

    def __init__(self, cluster: Any, workers: list[Any]) -> None:
        self.cluster = cluster
        self.workers = {node.node_id: node for node in workers}
        self.removed: list[str] = []

    def remove(self, node_id: str) -> None:
        """Kill one worker node, as a lost machine."""
        self.cluster.remove_node(self.workers.pop(node_id))
        self.removed.append(node_id)


@pytest.fixture(scope="module")
def multinode() -> Iterator[MultiNode]:
    import ray
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="sea-mn-", dir="/tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 0,
                "include_dashboard": False,
                "temp_dir": temp_dir,
                # Declare a lost node dead within seconds, not the default half minute.
                "_system_config": {
                    "health_check_period_ms": 500,
                    "health_check_failure_threshold": 4,
                },
            },
        )
        workers = [
            cluster.add_node(num_cpus=1, resources={f"sea_worker_{i}": 1}) for i in range(WORKERS)
        ]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            yield MultiNode(cluster, workers)
        finally:
            ray.shutdown()
            cluster.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


def _alive_collectors() -> dict[str, str]:
    """Name -> node id of every live sea-dist collector (from the GCS actor table)."""
    from ray._private import state

    return {
        actor["Name"]: actor["Address"]["NodeID"]
        for actor in state.actors().values()
        if actor["State"] == "ALIVE" and actor["Name"].startswith(ACTOR_PREFIX)
    }


# ---------------------------------------------------------------------------------------------
# collection


@pytest.fixture(scope="module")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> SeaConfig:
    from tiny_models import save_tiny_model

    folder = save_tiny_model("llama", tmp_path_factory.mktemp("model") / "tiny-llama")
    return config_from_dict(
        {
            "model": {"id": str(folder)},
            "data": {"source": "builtin", "limit": 24},
            "collect": {
                "layers": [0, 2],
                "neutral": "generate",
                "max_new_tokens": 3,
                "batch_size": 2,
                "rows_per_shard": 2,
                "num_actors": 2,
                "max_retries": 2,
            },
            "store": {"url": str(tmp_path_factory.mktemp("stores") / "ref.zarr")},
        }
    )


def _read_all(url: str) -> dict[str, np.ndarray]:
    store = ActivationStore.open(url)
    store.require_complete()
    return {name: store.read(name) for name in ARRAYS}


def test_collection_survives_losing_a_worker_node(
    multinode: MultiNode, base_config: SeaConfig, tmp_path: Path
) -> None:
    placements: list[set[str]] = []

    def record(result: ShardResult) -> None:
        placements.append(set(_alive_collectors().values()))

    reference = collect(base_config, progress=False, on_result=record)
    assert (reference.shards, reference.shards_collected, reference.shards_retried) == (12, 12, 0)
    # Spread: the two collectors ran on two different worker nodes, never on the head.
    assert any(len(nodes) == 2 for nodes in placements)
    assert set().union(*placements) <= set(multinode.workers)

    lost: list[str] = []

    def lose_a_node(result: ShardResult) -> None:
        if lost:
            return
        # A node that runs a collector now, which holds queued shards (max_in_flight 2): the
        # node dies with work in flight.
        victim = sorted(_alive_collectors().values())[0]
        multinode.remove(victim)
        lost.append(victim)

    config = with_overrides(base_config, store={"url": str(tmp_path / "lost-node.zarr")})
    summary = collect(config, progress=False, on_result=lose_a_node)
    assert lost, "no node was removed"
    assert summary.actors_replaced >= 1 and summary.shards_retried >= 1
    assert summary.shards_collected == 12
    # The replacement collectors ran on the nodes that remained.
    assert lost[0] not in set(_alive_collectors().values())
    found, expected = _read_all(config.store.url), _read_all(base_config.store.url)
    for name in ARRAYS:
        np.testing.assert_array_equal(found[name], expected[name], err_msg=name)


# ---------------------------------------------------------------------------------------------
# fit on Dask-on-Ray


@pytest.fixture(scope="module")
def fit_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer store (N=6144, d=512) with planted structure: each statistics task does a few
    hundred milliseconds of products, long enough to be running when its node dies."""
    n, d, layers = 6144, 512, (0, 1)
    rng = np.random.default_rng(3)
    url = str(tmp_path_factory.mktemp("fit") / "store.zarr")
    spec = StoreSpec(
        model_id="m",
        model_revision="0",
        architecture="llama",
        d_model=d,
        n_model_layers=2,
        tokenizer_fingerprint="t",
        site="residual",
        site_template=None,
        layers=layers,
        token="last",
        neutral="prompt",
        max_new_tokens=0,
        demonstrations_fingerprint="x",
        n_rows=n,
        rows_per_shard=512,
    )
    store = ActivationStore.create(url, spec)
    basis, offset = rng.normal(size=(8, d)), rng.normal(size=d)
    for shard, start, stop in store.iter_shards():
        latent = rng.normal(size=(stop - start, len(layers), 8)) * np.linspace(3, 0.5, 8)
        store.write_shard(
            shard,
            {
                role: (
                    latent @ basis + offset + 0.1 * rng.normal(size=(stop - start, len(layers), d))
                ).astype(np.float32)
                for role in ROLES
            },
            [str(i) for i in range(start, stop)],
            [""] * (stop - start),
            np.zeros(stop - start, dtype=np.int64),
        )
    return url


def _fit(url: str) -> FitResult:
    config = FitConfig(scheduler="ray", positive_energy=0.9, negative_energy=0.9)
    # 6 partitions per layer: 12 statistics tasks over 3 one-CPU nodes.
    return fit_store(url, config, partitions=6)


def _projection_gap(a: FitResult, b: FitResult) -> float:
    gaps = [0.0]
    for x, y in zip(a.layers, b.layers, strict=True):
        assert (x.layer, x.k_pos, x.k_neg) == (y.layer, y.k_pos, y.k_neg)
        np.testing.assert_allclose(x.mean, y.mean, rtol=1e-12)
        for u, v in ((x.U_pos, y.U_pos), (x.U_neg, y.U_neg)):
            gaps.append(float(np.linalg.norm(u @ u.T - v @ v.T)))
    return max(gaps)


def test_dask_on_ray_fit_survives_losing_a_worker_node(
    multinode: MultiNode, fit_store_url: str, tmp_path: Path
) -> None:
    from ray.util.dask import RayDaskCallback

    reference = _fit(fit_store_url)
    log_path = str(tmp_path / "task-nodes.log")
    Path(log_path).touch()
    lost: list[str] = []
    submitted: list[int] = []

    class LogTaskNodes(RayDaskCallback):
        """Runs in the Ray workers: appends the node id of each Dask task as it starts."""

        def _ray_pretask(self, key: Any, object_refs: Any) -> None:
            import ray

            with open(log_path, "a", encoding="utf-8") as log:
                log.write(f"{ray.get_runtime_context().get_node_id()}\n")

    class RemoveBusyNode(RayDaskCallback):
        """Runs on the driver once every task is submitted: waits until a task runs on a
        worker node, then kills that node."""

        def _ray_postsubmit_all(self, object_refs: Any, dsk: Any) -> None:
            submitted.append(len(object_refs))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                busy = [n for n in Path(log_path).read_text().split() if n in multinode.workers]
                if busy:
                    multinode.remove(busy[0])
                    lost.append(busy[0])
                    return
                time.sleep(0.01)

        def __reduce__(self) -> Any:
            # Ray ships every callback's (inherited, no-op) pre/post-task hooks to the workers;
            # this one holds the cluster, so it travels as a plain no-op callback.
            return (RayDaskCallback, ())

    with RemoveBusyNode(), LogTaskNodes():
        found = _fit(fit_store_url)
    assert lost, "no node was removed during the fit"
    # The victim was running part of the statistics pass when it died, and the pass still
    # used the remaining nodes.
    ran_on = set(Path(log_path).read_text().split())
    assert lost[0] in ran_on and len(ran_on - set(lost)) >= 1
    # Work lost with the node was run again elsewhere: more task starts than tasks.
    assert len(Path(log_path).read_text().split()) > submitted[0]
    assert _projection_gap(found, reference) < 1e-10
