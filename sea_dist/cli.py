"""The ``sea-dist`` command.

Each concept contributes its subcommands through a small ``commands`` module exposing
``register(subparsers)``; handlers take the parsed namespace and return an exit code. Command
modules import heavy libraries (torch, ray, dask) inside their handlers so ``--help`` is instant.
Every :class:`SeaDistError` becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sea_dist import __version__
from sea_dist.errors import SeaDistError

# Modules that define subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "sea_dist.commands",
    "sea_dist.collect.commands",
    "sea_dist.fit.commands",
    "sea_dist.artifacts.commands",
    "sea_dist.evaluate.commands",
    "sea_dist.schedule.commands",
)


class _Parser(argparse.ArgumentParser):
    """Argument errors exit 2 with one line, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser with every available subcommand."""
    parser = _Parser(
        prog="sea-dist",
        description="Spectral Editing of Activations at cluster scale: collect activations with "
        "Ray, fit projections with Dask, publish versioned artifacts, edit and evaluate models.",
    )
    parser.add_argument("--version", action="version", version=f"sea-dist {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is not None and name.startswith(error.name):
                continue  # that concept is not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sea-dist`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except SeaDistError as error:
        print(f"sea-dist: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sea-dist: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
