"""Errors that sea-dist raises on purpose.

Every message says what was expected, what was found and how to fix it, on one line, so the CLI
can print it as is and exit with code 2.
"""

from __future__ import annotations


class SeaDistError(Exception):
    """Base class of every error sea-dist raises for bad input or a refused operation."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ConfigError(SeaDistError):
    """A configuration file or value is invalid."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
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


def expected_found(what: str, expected: str, found: object, fix: str = "") -> str:
    """Format the house error message: ``<what>: expected <expected>, found <found>[; <fix>]``."""
    message = f"{what}: expected {expected}, found {found!r}"
    return f"{message}; {fix}" if fix else message
