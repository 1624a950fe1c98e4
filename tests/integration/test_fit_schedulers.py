"""The same store fitted on local threads, a ``distributed`` cluster and Dask-on-Ray gives the same
projections (U U^T within 1e-10). Starts a real LocalCluster (2 worker processes) and a real
local Ray cluster (2 CPUs)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sea_dist.config import FitConfig
from sea_dist.fit import FitResult, fit_store
from sea_dist.store import ActivationStore, StoreSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROLES = ("neutral", "positive", "negative")


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer store (N=96, d=24) with planted rank-4 structure, 12 shards."""
    n, d, layers = 96, 24, (0, 2)
    rng = np.random.default_rng(11)
    url = str(tmp_path_factory.mktemp("schedulers") / "store.zarr")
    spec = StoreSpec(
        model_id="m",
        model_revision="0",
        architecture="llama",
        d_model=d,
        n_model_layers=3,
        tokenizer_fingerprint="t",
        site="residual",
        site_template=None,
        layers=layers,
        token="last",
        neutral="prompt",
        max_new_tokens=0,
        demonstrations_fingerprint="x",
        n_rows=n,
        rows_per_shard=8,
    )
    store = ActivationStore.create(url, spec)
    latent = rng.normal(size=(n, len(layers), 4)) * np.array([3.0, 2.0, 1.0, 0.5])
    data = {
        role: (
            np.einsum("nlr,rd->nld", latent, rng.normal(size=(4, d)))
            + rng.normal(size=d)
            + 0.1 * rng.normal(size=(n, len(layers), d))
        ).astype(np.float32)
        for role in ROLES
    }
    for shard, start, stop in store.iter_shards():
        store.write_shard(
            shard,
            {r: data[r][start:stop] for r in ROLES},
            [str(i) for i in range(start, stop)],
            [""] * (stop - start),
            np.zeros(stop - start, dtype=np.int64),
        )
    return url


def fit(url: str, scheduler: str, svd: str = "exact", partitions: int | None = 3) -> FitResult:
    config = FitConfig(scheduler=scheduler, svd=svd, positive_energy=0.9, negative_energy=0.9)  # type: ignore[arg-type]
    return fit_store(url, config, partitions=partitions)


def projection_gaps(a: FitResult, b: FitResult) -> list[float]:
    gaps = []
    for x, y in zip(a.layers, b.layers):
        assert (x.layer, x.k_pos, x.k_neg) == (y.layer, y.k_pos, y.k_neg)
        for u, v in ((x.U_pos, y.U_pos), (x.U_neg, y.U_neg)):
            gaps.append(float(np.linalg.norm(u @ u.T - v @ v.T)))
        np.testing.assert_allclose(x.mean, y.mean, rtol=1e-12)
    return gaps


@pytest.fixture(scope="module")
def reference(store_url: str) -> dict[str, FitResult]:
    return {svd: fit(store_url, "threads", svd) for svd in ("exact", "randomized")}


@pytest.fixture(scope="module")
def distributed_address() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as patch:
        # Ray 2.60 enables token auth by default; a throwaway local cluster needs neither it nor
        # a non-loopback head.
        patch.setenv("RAY_AUTH_MODE", "disabled")
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # address="local" starts a fresh cluster even when another one runs on this machine; its
        # own short temp dir keeps it (and its socket paths) apart from everybody else's.
        temp_dir = tempfile.mkdtemp(prefix="sea-fit-ray-", dir="/tmp")
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp_dir,
        )
        try:
            yield
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


def test_threads_partitions_do_not_change_the_result(store_url: str, reference) -> None:
    assert (
        max(projection_gaps(fit(store_url, "threads", partitions=None), reference["exact"])) < 1e-10
    )
    assert max(projection_gaps(fit(store_url, "synchronous"), reference["exact"])) < 1e-10


@pytest.mark.parametrize("svd", ["exact", "randomized"])
def test_distributed_matches_threads(
    store_url: str, reference, distributed_address: str, svd: str
) -> None:
    assert distributed_address.startswith("tcp://")
    found = fit(store_url, distributed_address, svd)
    assert max(projection_gaps(found, reference[svd])) < 1e-10


@pytest.mark.parametrize("svd", ["exact", "randomized"])
def test_dask_on_ray_matches_threads(
    store_url: str, reference, ray_session: None, svd: str
) -> None:
    found = fit(store_url, "ray", svd)
    assert max(projection_gaps(found, reference[svd])) < 1e-10


def test_thin_qr_route_on_ray_and_distributed(
    tmp_path: Path, ray_session: None, distributed_address: str
) -> None:
    # N < d: the rows travel as lazy Dask arrays whose tasks open the store by path.
    from sea_dist.store import ActivationStore as Store

    n, d = 10, 32
    rng = np.random.default_rng(5)
    url = str(tmp_path / "small.zarr")
    spec = StoreSpec(
        model_id="m",
        model_revision="0",
        architecture="llama",
        d_model=d,
        n_model_layers=1,
        tokenizer_fingerprint="t",
        site="mlp",
        site_template=None,
        layers=(0,),
        token="last",
        neutral="prompt",
        max_new_tokens=0,
        demonstrations_fingerprint="x",
        n_rows=n,
        rows_per_shard=4,
    )
    store = Store.create(url, spec)
    data = {r: rng.normal(size=(n, 1, d)).astype(np.float32) for r in ROLES}
    for shard, start, stop in store.iter_shards():
        store.write_shard(
            shard,
            {r: data[r][start:stop] for r in ROLES},
            [str(i) for i in range(start, stop)],
            [""] * (stop - start),
            np.zeros(stop - start, dtype=np.int64),
        )
    base = fit(url, "threads", "qr")
    assert base.layers[0].svd_path == "qr"
    for scheduler in ("ray", distributed_address):
        assert max(projection_gaps(fit(url, scheduler, "qr"), base)) < 1e-10


def test_unreachable_distributed_address(store_url: str) -> None:
    from sea_dist.errors import FitError

    with pytest.raises(FitError, match="reachable"):
        fit_store(store_url, FitConfig(scheduler="tcp://127.0.0.1:1"))
