"""Ray job entrypoint: fit SEA projections from an activation store.

Submit with, e.g.::

    ray job submit --working-dir . -- /path/to/venv/bin/python jobs/fit.py \
        --config jobs/configs/demo.yaml --scheduler ray

Takes the same arguments as ``sea-dist fit`` (a ``--config`` YAML and/or flags). The last line
printed is ``SEA_DIST_RESULT {json}`` with ``status`` ``ok`` (and ``fit_dir``, per-layer k) or
``error``; the exit code is 0 on success, 2 for bad input (SeaDistError), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fit job and print the ``SEA_DIST_RESULT`` line."""
    from sea_dist.errors import SeaDistError
    from sea_dist.fit.commands import add_fit_arguments, connect_ray_if_needed, resolve

    parser = argparse.ArgumentParser(prog="jobs/fit.py", description=__doc__.splitlines()[0])
    add_fit_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        from sea_dist.fit.pipeline import fit_store

        store, config, out = resolve(args)
        connect_ray_if_needed(config.scheduler)
        result = fit_store(store, config, out=out, overwrite=args.overwrite, progress=True)
    except SeaDistError as error:
        _report({"status": "error", "error": str(error)})
        return 2
    except Exception as error:  # a job must always end with its result line
        logging.getLogger("jobs.fit").exception("fit failed")
        _report({"status": "error", "error": f"{type(error).__name__}: {error}"})
        return 1
    _report(
        {
            "status": "ok",
            "fit_dir": str(out),
            "store": store,
            "layers": {
                str(p.layer): {"k_pos": p.k_pos, "k_neg": p.k_neg, "svd_path": p.svd_path}
                for p in result.layers
            },
        }
    )
    return 0


def _report(payload: dict[str, object]) -> None:
    print("SEA_DIST_RESULT " + json.dumps(payload), flush=True)


if __name__ == "__main__":
    sys.exit(main())
