"""Ray job entrypoint: the main job, collect -> fit -> publish -> evaluate, for one config.

Submit with, e.g.::

    ray job submit --working-dir . --runtime-env infra/runtime_env.yaml -- \
        /path/to/venv/bin/python jobs/pipeline.py --config jobs/configs/default.yaml

``ray.init()`` inside collection joins the cluster the job was submitted to; run directly, it
starts a local cluster. The last line printed is ``SEA_DIST_RESULT {json}`` with ``status``,
``artifact`` (``name@version``), the registry, the report path and the before/after metrics.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sea_dist.cli.job_entry import run_job
from sea_dist.config import load_config


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pipeline job."""
    parser = argparse.ArgumentParser(prog="jobs/pipeline.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="path to a YAML config")
    parser.add_argument("--overwrite-store", action="store_true")
    parser.add_argument("--no-evaluate", action="store_true", help="stop after publishing")
    args = parser.parse_args(argv)

    def body() -> Mapping[str, Any]:
        from sea_dist.cli.pipeline import run_pipeline

        result = run_pipeline(
            load_config(args.config),
            overwrite_store=args.overwrite_store,
            evaluate=not args.no_evaluate,
        )
        print(result.summary(), flush=True)
        return result.to_dict()  # also the evaluation record and the alias moves

    return run_job("pipeline", body)


if __name__ == "__main__":
    sys.exit(main())
