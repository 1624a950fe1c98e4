"""The ``sea-dist`` command.

Each concept contributes its subcommands through a small ``commands`` module exposing
``register(subparsers)``; handlers take the parsed namespace and return an exit code. Command
modules import heavy libraries (torch, ray, dask) inside their handlers so ``--help`` is instant.
Every :class:`SeaDistError` becomes one line on stderr and exit code 2, never a traceback. A
reader that closes standard output early (``sea-dist registry versions NAME | head -1``) ends
the command quietly with exit code 0.
"""

from __future__ import annotations

import argparse
import importlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from sea_dist import __version__
from sea_dist.errors import SeaDistError

# Modules that define subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "sea_dist.cli.run",
    "sea_dist.cli.data",
    "sea_dist.cli.collect",
    "sea_dist.cli.store",
    "sea_dist.cli.fit",
    "sea_dist.cli.registry",
    "sea_dist.cli.export",
    "sea_dist.cli.evaluate",
    "sea_dist.cli.studies",
    "sea_dist.cli.schedule",
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


class _StdoutClosed(Exception):
    """Whoever read our standard output went away (``sea-dist ... | head -1``)."""


class _GuardedStdout:
    """Standard output whose broken pipe is :class:`_StdoutClosed`, not an ``OSError``.

    Command handlers report ``OSError`` as storage or network failures; a reader that closed
    the pipe is neither, and not an error at all, so it must not look like one.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise _StdoutClosed from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise _StdoutClosed from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _discard_stdout(stream: TextIO) -> None:
    """Point the closed standard output at /dev/null, so the exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # not a real file descriptor (captured in tests): nothing is flushed at exit


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sea-dist`` console script."""
    stdout = sys.stdout
    sys.stdout = _GuardedStdout(stdout)
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, while it can still be handled
        return code
    except _StdoutClosed:
        _discard_stdout(stdout)
        return 0  # the reader has what it wanted (`| head`): not an error
    finally:
        sys.stdout = stdout


def _main(argv: Sequence[str] | None) -> int:
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
