"""``collect()`` runs on the cluster its caller connected to and never starts one itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from sea_dist.collect.driver import collect
from sea_dist.config import config_from_dict
from sea_dist.errors import ClusterError


def test_collect_without_ray_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    if ray.is_initialized():
        pytest.skip("Ray already runs in this process")
    store = tmp_path / "store.zarr"
    config = config_from_dict(
        {"data": {"source": "builtin", "limit": 2}, "store": {"url": str(store)}}
    )
    with pytest.raises(ClusterError) as caught:
        collect(config, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("collect: ray.is_initialized(): expected True")
    assert "sea_dist.cli.cluster.init_ray(config.collect.ray_address)" in message
    assert not ray.is_initialized()  # nothing was started behind the caller's back
    assert not store.exists()  # nor written
