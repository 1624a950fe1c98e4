"""``sea-dist data fetch NAME`` and ``sea-dist data where``: benchmark files from their source."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sea_dist.cli.environment import apply_environment
from sea_dist.config import DataConfig, SeaConfig
from sea_dist.data.fetch import CACHE_ENV, data_cache_dir, fetch_source
from sea_dist.data.locate import locate_benchmark_file, missing_data_hint
from sea_dist.data.sources import SOURCES


def register(subparsers: Any) -> None:
    """Add the ``data`` command group to the ``sea-dist`` parser."""
    parser = subparsers.add_parser(
        "data",
        help="fetch the benchmark files (TruthfulQA, BBQ) and show where they are found",
        description="Benchmark data from its pinned public source, checked by sha256 and "
        "cached. Commands look for a file in evaluate.data_dir, $SEA_DIST_DATA_DIR, the data "
        "cache, then ../shared/data.",
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    parser.set_defaults(handler=lambda _args: _usage(parser))

    fetch = actions.add_parser(
        "fetch",
        help="download a source's files at their pinned revision into the data cache",
        description="Download every file of NAME, refuse any whose size or sha256 differs "
        "from the pin, and move it into the cache atomically (a failed download leaves "
        "nothing). Files already cached and verified are kept.",
    )
    fetch.add_argument("name", choices=[*sorted(SOURCES), "all"], help="the source to fetch")
    fetch.add_argument(
        "--cache-dir",
        default=None,
        help="cache folder (default $SEA_DIST_DATA_CACHE, else ~/.cache/sea-dist/data)",
    )
    fetch.add_argument(
        "--source-url",
        default=None,
        help="base URL of a mirror with the same layout (default $SEA_DIST_DATA_SOURCE_URL, "
        "else the pinned GitHub revision)",
    )
    fetch.add_argument("--timeout", type=float, default=60.0, help="seconds per network operation")
    fetch.set_defaults(handler=_fetch)

    where = actions.add_parser(
        "where",
        help="print where each benchmark file is found, or how to get it",
        description="One line per benchmark file: the path it is read from and why, or what "
        "is missing and the command that fetches it. Exit 2 when any is missing.",
    )
    where.add_argument(
        "--data-dir", default=None, help="the folder a config names as evaluate.data_dir"
    )
    where.set_defaults(handler=_where)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _environment() -> DataConfig:
    """The data settings commands use: the library defaults with the environment applied."""
    return apply_environment(SeaConfig()).data


def _fetch(args: argparse.Namespace) -> int:
    data = _environment()
    cache_root = data_cache_dir(args.cache_dir or data.cache_dir)

    names = sorted(SOURCES) if args.name == "all" else [args.name]
    for name in names:
        print(f"{name}: {SOURCES[name].license}")
        for entry in fetch_source(
            name,
            cache_dir=cache_root,
            base_url=args.source_url or data.source_url,
            timeout=args.timeout,
        ):
            state = "downloaded, sha256 verified" if entry.downloaded else "already cached"
            print(f"{entry.relative_path}: {entry.path} ({state})")
            note = _shadow_note(entry.relative_path, entry.path, cache_root, data)
            if note:
                print(f"  note: {note}")
    return 0


def _shadow_note(relative_path: str, cached: Path, cache_root: Path, data: DataConfig) -> str:
    """Why commands would not read ``cached``: a cache they do not search, or a folder first."""
    if cache_root.resolve() != data_cache_dir(data.cache_dir).resolve():
        return f"commands do not read this cache; set ${CACHE_ENV}={cache_root}"
    found = locate_benchmark_file(relative_path, data=data)
    if found is not None and found[1].resolve() != cached.resolve():
        return f"commands read {found[1]} ({found[0].origin}) first"
    return ""


def _where(args: argparse.Namespace) -> int:
    data = _environment()
    missing = 0
    for source in SOURCES.values():
        for pinned in source.files:
            found = locate_benchmark_file(pinned.relative_path, args.data_dir, data=data)
            if found is None:
                missing += 1
                print(missing_data_hint(pinned.relative_path, data=data))
            else:
                print(f"{pinned.relative_path}: {found[1]} ({found[0].origin})")
    return 2 if missing else 0
