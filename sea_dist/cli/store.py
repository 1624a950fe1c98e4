"""The ``sea-dist store`` subcommands: ``store verify STORE [--mark-pending]``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``store`` to the ``sea-dist`` parser."""
    parser = subparsers.add_parser(
        "store",
        help="check an activation store (every chunk against its shard's digests)",
        description="Inspect activation stores written by 'sea-dist collect'.",
    )
    actions = parser.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify",
        help="check attributes, arrays, markers and every chunk; one line per problem",
        description="Check a whole activation store in one pass: its attributes, that the "
        "arrays agree with them, every shard's completion marker, and every chunk of every "
        "finished shard (decodes, exists, matches the sha256 recorded when it was written, "
        "holds finite values). Prints OK (exit 0) or one line per problem (exit 2). Stores "
        "written before digests existed are checked for what can be, with a note.",
    )
    verify.add_argument("store", help="activation store URL (local folder or fsspec URL)")
    verify.add_argument(
        "--mark-pending",
        action="store_true",
        help="clear the completion marker of every damaged shard, so that re-running the same "
        "collect config redoes exactly those shards",
    )
    verify.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    from sea_dist.store.verify import verify_store

    report = verify_store(args.store, mark_pending=args.mark_pending)
    for line in report.problems:
        print(line)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.ok:
        print(
            f"OK: store {args.store}: {report.chunks_checked} chunks checked, "
            f"{report.digests_checked} against their digests"
        )
        return 0
    return 2
