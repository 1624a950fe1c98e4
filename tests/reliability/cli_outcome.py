"""Run the ``sea-dist`` command in-process and judge a refusal: exit code 2, one line, no traceback.

``main`` maps every :class:`~sea_dist.errors.SeaDistError` to one line on stderr and exit code
2; argparse errors exit 2 through ``SystemExit``; ``validate-config`` prints its problems on
stdout. Anything else that escapes ``main`` is what a user would see as a traceback, so it is
recorded (not re-raised) and fails the refusal check.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from sea_dist.cli import main


@dataclass(frozen=True)
class Outcome:
    """What one CLI invocation produced."""

    code: int | None
    out: str
    err: str
    escaped: str | None = None
    """The traceback of an exception that escaped ``main`` (a user would see it), else None."""

    @property
    def text(self) -> str:
        """stdout and stderr together, stripped."""
        return (self.out + self.err).strip()


def run_cli(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    """Call ``sea_dist.cli.main(argv)``, capturing output, exit code and escaped exceptions."""
    capsys.readouterr()  # drop anything printed before
    escaped = None
    code: int | None
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    except Exception:  # noqa: BLE001 - exactly what the test must catch and report
        code, escaped = None, traceback.format_exc()
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err, escaped)


def refusal_problems(outcome: Outcome, expect: str = "") -> list[str]:
    """Why ``outcome`` is not a clean refusal (empty list when it is one).

    A clean refusal exits 2 and prints exactly one non-empty line (progress bars and log lines
    of the run are ignored: only lines that are not log records count) holding ``expect``.
    """
    if outcome.escaped is not None:
        return [f"exception escaped the CLI (a traceback):\n{outcome.escaped}"]
    problems = []
    if outcome.code != 2:
        problems.append(f"exit code: expected 2, found {outcome.code}")
    lines = [
        line for line in outcome.text.splitlines() if line.strip() and not is_log_or_progress(line)
    ]
    if len(lines) != 1:
        problems.append(f"output: expected one line, found {len(lines)}: {lines[:6]}")
    if "Traceback" in outcome.text:
        problems.append("output holds a traceback")
    if expect and expect not in outcome.text:
        problems.append(f"message: expected to contain {expect!r}, found {outcome.text[-300:]!r}")
    return problems


def is_log_or_progress(line: str) -> bool:
    """Log records (``HH:MM:SS LEVEL name: ...``) and progress bars are not the error message."""
    parts = line.split(" ", 2)
    is_record = len(parts) > 1 and parts[0].count(":") == 2 and parts[1] in _LEVELS
    return is_record or "it/s]" in line or "%|" in line or "% Completed |" in line


_LEVELS = {"DEBUG", "INFO", "WARNING"}
