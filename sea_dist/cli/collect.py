"""The ``sea-dist collect`` subcommand (and the shared setup of ``jobs/collect.py``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from sea_dist.cli.cluster import init_ray
from sea_dist.cli.environment import anchored_from_environment, apply_environment
from sea_dist.config import load_config, with_overrides
from sea_dist.store.target import check_store_target

if TYPE_CHECKING:  # heavy imports stay inside the handlers so --help is instant
    from sea_dist.config import SeaConfig

__all__ = ["add_collect_arguments", "collect_config", "config_with_overrides", "register"]


def add_collect_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``sea-dist collect`` and ``jobs/collect.py``."""
    parser.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="store URL (local folder or fsspec URL); overrides store.url",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing store, even one recorded with another "
        "model, layers, site or data (never done without this flag)",
    )
    parser.add_argument(
        "--num-actors",
        type=int,
        default=None,
        metavar="N",
        help="collectors to start (default collect.num_actors; 0 = one per GPU, "
        "or per CPU on CPU-only clusters)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="record only the first N demonstrations (overrides data.limit)",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to join (default collect.ray_address, then "
        "$RAY_ADDRESS; else a local cluster is started)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: Any) -> None:
    """Add ``collect`` to the ``sea-dist`` parser."""
    parser = subparsers.add_parser(
        "collect",
        help="record neutral/positive/negative activations into a Zarr store with Ray actors",
        description="Record SEA activations of the configured demonstrations with one Ray actor "
        "per GPU (or CPU slot) into a chunked Zarr store. Re-running the same config resumes; "
        "a store recorded with a different model, revision, layers, site or data is refused "
        "unless --overwrite is given.",
    )
    parser.add_argument("config", help="path to a YAML config")
    add_collect_arguments(parser)
    parser.set_defaults(handler=_collect)


def config_with_overrides(config: SeaConfig, args: argparse.Namespace) -> SeaConfig:
    """Apply the command-line overrides of :func:`add_collect_arguments` to ``config``."""
    sections: dict[str, dict[str, Any]] = {}
    if args.store is not None:
        sections.setdefault("store", {})["url"] = args.store
    if args.num_actors is not None:
        sections.setdefault("collect", {})["num_actors"] = args.num_actors
    if args.address is not None:
        sections.setdefault("collect", {})["ray_address"] = args.address
    if args.limit is not None:
        sections.setdefault("data", {})["limit"] = args.limit
    return with_overrides(config, **sections) if sections else config


def collect_config(args: argparse.Namespace) -> SeaConfig:
    """The config a collection runs: the file, the command line's overrides, the environment
    (:func:`~sea_dist.cli.environment.apply_environment`), and ``store.url`` anchored against
    ``$SEA_DIST_OUTPUT_BASE`` (never inside a Ray job's temporary working-directory copy)."""
    config = apply_environment(config_with_overrides(load_config(args.config), args))
    url = anchored_from_environment(config.store.url, "store.url")
    return with_overrides(config, store={"url": url}) if url != config.store.url else config


def _collect(args: argparse.Namespace) -> int:
    config = collect_config(args)
    # Refuse a store URL holding anything but a store before Ray and torch are even imported
    # and before a cluster starts; collect() checks again.
    check_store_target(config.store.url, args.overwrite or config.store.overwrite)
    from sea_dist.collect.driver import collect

    init_ray(config.collect.ray_address)
    summary = collect(config, overwrite=args.overwrite, progress=not args.no_progress)
    for line in summary.lines():
        print(line)
    return 0
