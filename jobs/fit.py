"""Ray job entrypoint: fit SEA projections from an activation store.

Submit with, e.g.::

    ray job submit --working-dir . -- /path/to/venv/bin/python jobs/fit.py \
        --config jobs/configs/demo.yaml --scheduler ray

Takes the same arguments as ``sea-dist fit`` (a ``--config`` YAML and/or flags). The last line
printed is ``SEA_DIST_RESULT {json}`` with ``status`` ``ok`` (and ``fit_dir``, per-layer k) or
``error``; the exit code is 0 on success, 2 for bad input (SeaDistError), 1 otherwise (the
contract of :mod:`sea_dist.cli.job_entry`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sea_dist.cli.fit import add_fit_arguments, connect_ray_if_needed, resolve
from sea_dist.cli.job_entry import run_job


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fit job and print the ``SEA_DIST_RESULT`` line."""
    parser = argparse.ArgumentParser(prog="jobs/fit.py", description=__doc__.splitlines()[0])
    add_fit_arguments(parser)
    args = parser.parse_args(argv)

    def body() -> Mapping[str, Any]:
        from sea_dist.fit.pipeline import fit_store

        store, config, out = resolve(args)
        connect_ray_if_needed(config.scheduler)
        result = fit_store(store, config, out=out, overwrite=args.overwrite, progress=True)
        return {
            "fit_dir": str(out),
            "store": store,
            "layers": {
                str(p.layer): {"k_pos": p.k_pos, "k_neg": p.k_neg, "svd_path": p.svd_path}
                for p in result.layers
            },
        }

    return run_job("fit", body)


if __name__ == "__main__":
    sys.exit(main())
