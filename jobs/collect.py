"""Ray job entrypoint: collect SEA activations into a Zarr store.

Submit with, e.g.::

    ray job submit --working-dir . -- /path/to/venv/bin/python jobs/collect.py \
        --config jobs/configs/default.yaml

:func:`~sea_dist.cli.cluster.init_ray` joins the cluster the job was submitted to (Ray sets
``RAY_ADDRESS``); run directly, it starts a local cluster. Takes the options of ``sea-dist
collect``. The last line printed is ``SEA_DIST_RESULT {json}`` with ``status`` ``ok`` (and the
store, rows, tokens, shard counts) or ``error``; the exit code is 0 on success, 2 for bad input
(SeaDistError), 1 otherwise (the contract of :mod:`sea_dist.cli.job_entry`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sea_dist.cli.cluster import init_ray
from sea_dist.cli.collect import add_collect_arguments, collect_config
from sea_dist.cli.job_entry import run_job


def main(argv: Sequence[str] | None = None) -> int:
    """Run the collect job and print the ``SEA_DIST_RESULT`` line."""
    parser = argparse.ArgumentParser(prog="jobs/collect.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="path to a YAML config")
    add_collect_arguments(parser)
    args = parser.parse_args(argv)

    def body() -> Mapping[str, Any]:
        from sea_dist.collect.driver import collect

        config = collect_config(args)
        init_ray(config.collect.ray_address)
        summary = collect(config, overwrite=args.overwrite, progress=not args.no_progress)
        for line in summary.lines():
            print(line, flush=True)
        return {
            "store": summary.store_url,
            "rows": summary.rows,
            "rows_collected": summary.rows_collected,
            "tokens": summary.tokens,
            "shards": summary.shards,
            "shards_collected": summary.shards_collected,
            "shards_skipped": summary.shards_skipped,
            "shards_retried": summary.shards_retried,
            "wall_seconds": round(summary.wall_seconds, 3),
            "store_bytes": summary.store_bytes,
        }

    return run_job("collect", body)


if __name__ == "__main__":
    sys.exit(main())
