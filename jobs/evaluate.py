"""Ray job entrypoint: score a published artifact before/after on a config's evaluation tasks.

Submit with, e.g.::

    ray job submit --working-dir . -- /path/to/venv/bin/python jobs/evaluate.py \
        --config jobs/configs/default.yaml --artifact smollm2-truthful@latest

The last line printed is ``SEA_DIST_RESULT {json}`` with the artifact and the metrics.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sea_dist.cli.environment import (
    anchor_outputs_from_environment,
    anchored_from_environment,
    apply_environment,
)
from sea_dist.cli.job_entry import run_job
from sea_dist.config import load_config
from sea_dist.evaluate.report import metrics_table


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation job."""
    parser = argparse.ArgumentParser(prog="jobs/evaluate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="path to a YAML config")
    parser.add_argument("--artifact", default=None, help="reference (default <name>@latest)")
    parser.add_argument("--registry", default=None, help="registry URL (default publish.registry)")
    args = parser.parse_args(argv)

    def body() -> Mapping[str, Any]:
        from sea_dist.evaluate.runner import evaluate_before_after

        config = anchor_outputs_from_environment(apply_environment(load_config(args.config)))
        artifact = args.artifact or f"{config.publish.name}@latest"
        registry = anchored_from_environment(args.registry or config.publish.registry, "--registry")
        metrics, notes = evaluate_before_after(config, artifact, registry=registry)
        print(metrics_table(metrics), flush=True)
        return {
            "artifact": artifact,
            "metrics": [
                {"task": m.task, "metric": m.metric, "before": m.before, "after": m.after}
                for m in metrics
            ],
            "notes": notes,
        }

    return run_job("evaluate", body)


if __name__ == "__main__":
    sys.exit(main())
