"""Child process of the driver-death test: run ``collect`` and die for real mid-run.

Usage: ``python collect_driver_child.py CONFIG RAY_ADDRESS EXIT_AFTER``. Joins the cluster, runs
the collection the config describes and calls ``os._exit(1)`` from the driver's ``on_result``
callback once ``EXIT_AFTER`` shards are complete: a driver killed mid-run, its collectors left
to Ray. Prints ``collect finished`` only if it was not killed.
"""

from __future__ import annotations

import os
import sys

from sea_dist.cli.cluster import init_ray
from sea_dist.collect.actor import ShardResult
from sea_dist.collect.driver import collect
from sea_dist.config import load_config


def main(config_path: str, address: str, exit_after: int) -> None:
    config = load_config(config_path)
    init_ray(address)
    completed: list[int] = []

    def die_after(result: ShardResult) -> None:
        completed.append(result.shard)
        if len(completed) >= exit_after:
            os._exit(1)

    collect(config, progress=False, on_result=die_after)
    print("collect finished")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
