"""Errors that sea-dist raises on purpose.

Every message says what was expected, what was found and how to fix it, on one line, so the CLI
can print it as is and exit with code 2.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 4000
"""A message longer than this is cut (a backstop: each quoted value is already an excerpt)."""
MAX_PROBLEMS = 50
"""A :class:`ConfigError` lists at most this many problems, then says how many more there are."""
EXCERPT_CHARS = 120
"""Quoted values (``found ...``) longer than this are shortened by :func:`excerpt`."""
MAX_PROBLEM_CHARS = 360
"""One problem of a :class:`ConfigError` (one line of ``validate-config``) is at most this long."""


def _cut(line: str, limit: int) -> str:
    if len(line) <= limit:
        return line
    return f"{line[: limit - 40]}... ({len(line)} characters, cut)"


class SeaDistError(Exception):
    """Base class of every error sea-dist raises for bad input or a refused operation."""

    def __init__(self, message: str) -> None:
        super().__init__(_cut(" ".join(message.split()), MAX_MESSAGE_CHARS))


class ConfigError(SeaDistError):
    """A configuration file or value is invalid."""

    def __init__(self, problems: list[str] | str) -> None:
        listed = [problems] if isinstance(problems, str) else list(problems)
        # validate-config prints each problem on its own line: each one is bounded too.
        listed = [_cut(" ".join(p.split()), MAX_PROBLEM_CHARS) for p in listed]
        if len(listed) > MAX_PROBLEMS:
            more = len(listed) - MAX_PROBLEMS
            listed = listed[:MAX_PROBLEMS] + [f"... and {more} more problems"]
        self.problems = listed
        super().__init__("; ".join(self.problems))


class DataError(SeaDistError):
    """Demonstrations or benchmark data are missing or malformed."""


class ModelError(SeaDistError):
    """A model cannot be loaded, or its architecture is not understood."""


class StoreError(SeaDistError):
    """An activation store is missing, incompatible or incomplete."""


class FitError(SeaDistError):
    """Projections cannot be fitted from the given activations."""


class ArtifactError(SeaDistError):
    """An artifact is malformed, tampered with, or does not match the model it edits."""


class RegistryError(SeaDistError):
    """A registry reference cannot be resolved or a registry operation is refused."""


class ClusterError(SeaDistError):
    """A Ray cluster (or another service a command waits for) cannot be reached in time."""


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)``, shortened to about ``limit`` characters for an error line.

    The repr of a huge value (a megabyte string, an alias-expanded YAML list nested ten deep) is
    never built in full: the walk stops as soon as ``limit`` characters are written.
    """
    parts: list[str] = []
    budget = [limit]
    try:
        _write_repr(value, parts, budget, depth=0)
    except _Full:
        return "".join(parts)[:limit] + "... (cut)"
    return "".join(parts)


class _Full(Exception):
    """The excerpt is long enough."""


def _emit(text: str, parts: list[str], budget: list[int]) -> None:
    parts.append(text[: budget[0] + 1])
    budget[0] -= len(text)
    if budget[0] < 0:
        raise _Full


def _write_repr(value: object, parts: list[str], budget: list[int], depth: int) -> None:
    if isinstance(value, str | bytes):
        room = budget[0]
        _emit(repr(value[: room + 1]), parts, budget)  # a cut value overflows the budget

    elif isinstance(value, list | tuple | dict | set | frozenset) and (
        value or not isinstance(value, set | frozenset)
    ):
        if depth >= 8:
            _emit("...", parts, budget)
            return
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        if isinstance(value, dict | set | frozenset):
            opening, closing = "{", "}"
        if isinstance(value, tuple) and len(value) == 1:
            closing = ",)"
        _emit(opening, parts, budget)
        items = value.items() if isinstance(value, dict) else value
        for i, item in enumerate(items):
            if i:
                _emit(", ", parts, budget)
            if isinstance(value, dict):
                _write_repr(item[0], parts, budget, depth + 1)
                _emit(": ", parts, budget)
                _write_repr(item[1], parts, budget, depth + 1)
            else:
                _write_repr(item, parts, budget, depth + 1)
        _emit(closing, parts, budget)
    else:
        _emit(repr(value), parts, budget)


def expected_found(what: str, expected: str, found: object, fix: str = "") -> str:
    """Format the house error message: ``<what>: expected <expected>, found <found>[; <fix>]``.

    ``found`` is quoted with :func:`excerpt`, so a huge value yields a short line.
    """
    message = f"{what}: expected {expected}, found {excerpt(found)}"
    return f"{message}; {fix}" if fix else message
