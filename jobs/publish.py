"""Ray job entrypoint: publish a fit output as the next version of an artifact name.

    python jobs/publish.py --fit-dir sea-runs/fit --name sea-demo --registry sea-runs/registry
    python jobs/publish.py --config jobs/configs/demo.yaml [--fit-dir DIR]

Publishing needs no cluster, so this does not start Ray. The last line printed is machine-
readable: ``SEA_DIST_RESULT {"status": "ok", "artifact": "name@v", ...}`` (JSON); on failure
``SEA_DIST_RESULT {"status": "error", ...}`` and a non-zero exit code (2 for bad input).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from sea_dist.artifacts.publish import publish_run
    from sea_dist.errors import SeaDistError

    try:
        fit_dir = args.fit_dir
        if fit_dir is None:
            from sea_dist.config import SeaConfig, load_config

            fit_dir = (load_config(args.config) if args.config else SeaConfig()).fit.out
        resolved = publish_run(
            fit_dir,
            name=args.name,
            registry=args.registry or os.environ.get("SEA_DIST_REGISTRY") or None,
            aliases=tuple(args.alias),
            config_path=args.config,
        )
    except SeaDistError as error:
        print(f"sea-dist publish: error: {error}", file=sys.stderr)
        print("SEA_DIST_RESULT " + json.dumps({"status": "error", "error": str(error)}))
        return 2
    except Exception as error:  # the job must always end with its result line
        logging.exception("publish failed")
        print("SEA_DIST_RESULT " + json.dumps({"status": "error", "error": repr(error)}))
        return 1
    result = {"status": "ok", "artifact": resolved.ref, "sha256": resolved.sha256}
    print("SEA_DIST_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
