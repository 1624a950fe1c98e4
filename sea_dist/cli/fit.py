"""The ``sea-dist fit`` subcommand (also the argument set of ``jobs/fit.py``)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from sea_dist.cli.cluster import init_ray
from sea_dist.cli.environment import anchored_from_environment
from sea_dist.config import SeaConfig, load_config, with_overrides
from sea_dist.errors import ConfigError

log = logging.getLogger(__name__)

SVD_CHOICES = ("auto", "exact", "qr", "randomized")
FEATURE_MAPS = ("linear", "tanh", "elu", "sqexp")

# argparse destination -> FitConfig field; None means "not given, keep the config's value".
_OVERRIDES = {
    "centre": "centre",
    "positive_energy": "positive_energy",
    "negative_energy": "negative_energy",
    "fixed_k": "fixed_k",
    "svd": "svd",
    "feature_map": "feature_map",
    "feature_map_scale": "feature_map_scale",
    "scheduler": "scheduler",
    "chunk_rows": "chunk_rows",
    "oversample": "oversample",
    "power_iterations": "power_iterations",
    "seed": "seed",
    "combine": "combine",
}


DEPRECATED_FLAGS = {"--k-pos": "--positive-energy", "--k-neg": "--negative-energy"}


def _take_deprecated(args: argparse.Namespace) -> None:
    """Move ``--k-pos`` / ``--k-neg`` to their new names, with a deprecation warning."""
    for old, new in DEPRECATED_FLAGS.items():
        value = getattr(args, old[2:].replace("-", "_"), None)
        if value is None:
            continue
        log.warning("%s is deprecated (k_pos/k_neg name the chosen rank): use %s", old, new)
        dest = new[2:].replace("-", "_")
        given = getattr(args, dest)
        if given is not None and given != value:
            raise ConfigError(f"{old}: expected the same value as {new}, found {value} and {given}")
        setattr(args, dest, value)


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fit options (shared by the CLI and the Ray job entrypoint)."""
    parser.add_argument(
        "store",
        nargs="?",
        default=None,
        help="activation store URL (default: store.url of --config)",
    )
    parser.add_argument("--out", default=None, help="fit folder to write (default: fit.out)")
    parser.add_argument("--config", default=None, help="sea-dist YAML config (fit section used)")
    parser.add_argument(
        "--centre",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="subtract feature means before the cross-covariances",
    )
    parser.add_argument(
        "--positive-energy",
        type=float,
        default=None,
        metavar="K",
        help="energy threshold K+ in (0, 1]: each layer keeps the fewest directions of Omega+ "
        "holding this share of its energy (the chosen rank is k_pos; default 0.99)",
    )
    parser.add_argument(
        "--negative-energy",
        type=float,
        default=None,
        metavar="K",
        help="energy threshold K- for Omega- (the chosen rank is k_neg; default 0.99)",
    )
    # The old names: they set the threshold, while k_pos / k_neg everywhere else is the rank.
    for old, new in DEPRECATED_FLAGS.items():
        parser.add_argument(
            old, type=float, default=None, metavar="K", help=f"deprecated: use {new}"
        )
    parser.add_argument(
        "--fixed-k",
        type=int,
        default=None,
        metavar="N",
        help="keep exactly N directions instead of the energy rule",
    )
    parser.add_argument(
        "--svd",
        choices=SVD_CHOICES,
        default=None,
        help="SVD path (default auto: qr if N < d and N <= 1024, exact if d <= 1024, "
        "else randomized)",
    )
    parser.add_argument(
        "--feature-map",
        choices=FEATURE_MAPS,
        default=None,
        help="Phi-SEA feature map (default linear)",
    )
    parser.add_argument(
        "--feature-map-scale",
        type=float,
        default=None,
        metavar="S",
        help="tanh/elu input scale or squared-exponential length scale",
    )
    parser.add_argument(
        "--combine",
        choices=("l2", "average"),
        default=None,
        help="combine rule recorded for the edit (default l2)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="threads (default), synchronous, processes, ray, or tcp://host:port",
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        metavar="ROWS",
        help="upper bound on rows read per block",
    )
    parser.add_argument("--oversample", type=int, default=None, help="randomized SVD oversampling")
    parser.add_argument(
        "--power-iterations", type=int, default=None, help="randomized SVD power iterations"
    )
    parser.add_argument("--seed", type=int, default=None, help="randomized SVD seed")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")


def resolve(args: argparse.Namespace) -> tuple[str, Any, str]:
    """``(store_url, FitConfig, out)`` from ``--config`` plus the flags given.

    Raises:
        ConfigError: invalid values.
    """
    _take_deprecated(args)
    config = load_config(args.config) if args.config else SeaConfig()
    overrides = {
        field: getattr(args, dest)
        for dest, field in _OVERRIDES.items()
        if getattr(args, dest) is not None
    }
    if args.out is not None:
        overrides["out"] = args.out
    if overrides:
        config = with_overrides(config, fit=overrides)
    store = anchored_from_environment(args.store or config.store.url, "store.url")
    out = anchored_from_environment(config.fit.out, "fit.out")
    return store, config.fit, out


def connect_ray_if_needed(scheduler: str) -> None:
    """Entry points only: connect to (or start) Ray when the pass runs on Dask-on-Ray."""
    if scheduler != "ray":
        return

    # RAY_ADDRESS (set inside Ray jobs) selects the cluster; otherwise a fresh local one starts.
    init_ray(None)


def register(subparsers: Any) -> None:
    """Add ``sea-dist fit`` to the parser."""
    parser = subparsers.add_parser(
        "fit",
        help="fit SEA projections from an activation store",
        description="Stream the store's cross-covariances with Dask (float64, memory independent "
        "of N), take their SVD (exact, thin-QR or randomized), choose k by the energy threshold "
        "and write fit.json + projections.safetensors atomically to --out.",
    )
    add_fit_arguments(parser)
    parser.set_defaults(handler=_fit)


def _fit(args: argparse.Namespace) -> int:
    from sea_dist.fit.pipeline import fit_store

    store, config, out = resolve(args)
    connect_ray_if_needed(config.scheduler)
    result = fit_store(store, config, out=out, overwrite=args.overwrite, progress=True)
    print(
        f"{'layer':>5} {'path':>10} {'k+':>5} {'energy+':>8} {'k-':>5} {'energy-':>8} "
        f"{'signature':>10}"
    )
    for p in result.layers:
        print(
            f"{p.layer:>5} {p.svd_path:>10} {p.k_pos:>5} {p.energy_pos:>8.4f} {p.k_neg:>5} "
            f"{p.energy_neg:>8.4f} {p.signature:>10.4g}"
        )
    print(out)
    return 0
