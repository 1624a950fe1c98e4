"""Ray job entrypoint: publish a fit output as the next version of an artifact name.

    python jobs/publish.py --fit-dir sea-runs/fit --name sea-demo --registry sea-runs/registry
    python jobs/publish.py --config jobs/configs/demo.yaml [--fit-dir DIR]

Publishing needs no cluster, so this does not start Ray. The last line printed is machine-
readable: ``SEA_DIST_RESULT {"status": "ok", "artifact": "name@v", ...}`` (JSON); on failure
``SEA_DIST_RESULT {"status": "error", ...}`` and a non-zero exit code (2 for bad input).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from sea_dist.cli.environment import (
    anchor_outputs_from_environment,
    output_base_from_environment,
    registry_from_environment,
)
from sea_dist.cli.job_entry import run_job
from sea_dist.config import SeaConfig, load_config


def main(argv: list[str] | None = None) -> int:
    """Run the publish job."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-dir", default=None, help="fit output (default: config fit.out)")
    parser.add_argument("--name", default=None, help="artifact name (default: config)")
    parser.add_argument(
        "--registry",
        default=None,
        help="registry URL (default: $SEA_DIST_REGISTRY, config, sea-runs/registry)",
    )
    parser.add_argument("--alias", action="append", default=[], help="alias to move (repeatable)")
    parser.add_argument("--config", default=None, help="YAML config (recorded in the manifest)")
    args = parser.parse_args(argv)

    def body() -> Mapping[str, Any]:
        from sea_dist.registry.publish_run import publish_run

        fit_dir = args.fit_dir
        if fit_dir is None:
            config = load_config(args.config) if args.config else SeaConfig()
            fit_dir = anchor_outputs_from_environment(config).fit.out  # where the fit job wrote it
        resolved = publish_run(
            fit_dir,
            name=args.name,
            registry=args.registry or registry_from_environment() or None,
            aliases=tuple(args.alias),
            config_path=args.config,
            output_base=output_base_from_environment(),
        )
        return {"artifact": resolved.ref, "sha256": resolved.sha256, "registry": resolved.registry}

    return run_job("publish", body)


if __name__ == "__main__":
    sys.exit(main())
