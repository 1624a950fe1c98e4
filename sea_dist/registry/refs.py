"""Artifact references: ``name``, ``name@latest``, ``name@<alias>``, ``name@<n>``, ``sha256:<hex>``.

Parsing is strict so that a reference can never name a path outside the registry: names and
aliases follow ``NAME_RE`` (lowercase letters, digits, '.', '_', '-', max 100 characters), versions
are positive integers (``7`` or ``v7``) and a content reference is 4 to 64 lowercase hex digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sea_dist.config import NAME_RE
from sea_dist.errors import RegistryError, expected_found

LATEST = "latest"
SHA_PREFIX_RE = re.compile(r"^[0-9a-f]{4,64}$")
VERSION_RE = re.compile(r"^v?([1-9][0-9]{0,8})$")
NUMERIC_RE = re.compile(r"^v?[0-9]+$")
"""Looks like a version number: never an alias, even when it is not a valid version."""
REF_HELP = "name, name@latest, name@<alias>, name@<version> or sha256:<hex prefix>"


class NotFoundError(RegistryError):
    """A well-formed reference names something the registry does not hold (HTTP 404)."""


@dataclass(frozen=True)
class Ref:
    """A parsed reference. Exactly one of (name + selector) or sha256 is set."""

    name: str | None = None
    version: int | None = None
    alias: str | None = None
    """``latest`` or a user alias when the reference selects by alias."""
    sha256: str | None = None
    """A hex prefix of the content sha256."""


@dataclass(frozen=True)
class Resolved:
    """A reference resolved to one immutable version."""

    name: str
    version: int
    sha256: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "ref": self.ref}


def check_name(name: str, what: str = "artifact name") -> str:
    """Return ``name`` if it is a valid registry name, else raise RegistryError."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise RegistryError(
            expected_found(
                what,
                "lowercase letters, digits, '.', '_' or '-' "
                "(at most 100, starting with a letter or digit)",
                name,
            )
        )
    return name


def check_alias(alias: str) -> str:
    """Validate a user alias (a name other than ``latest`` and not a version number)."""
    check_name(alias, "alias")
    if alias == LATEST or NUMERIC_RE.fullmatch(alias):
        raise RegistryError(
            expected_found("alias", "a name other than 'latest' or a version number", alias)
        )
    return alias


def check_version(version: object) -> int:
    """Return a positive version number (int, ``"7"`` or ``"v7"``), else raise RegistryError."""
    if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
        return version
    match = VERSION_RE.fullmatch(version) if isinstance(version, str) else None
    if not match:
        raise RegistryError(expected_found("version", "a positive integer like 7 or v7", version))
    return int(match.group(1))


def parse_ref(text: str) -> Ref:
    """Parse a reference string.

    Raises:
        RegistryError: the text is not one of the accepted forms.
    """
    if not isinstance(text, str) or not text or len(text) > 300:
        raise RegistryError(expected_found("reference", REF_HELP, text))
    if text.startswith("sha256:"):
        prefix = text.removeprefix("sha256:")
        if not SHA_PREFIX_RE.fullmatch(prefix):
            raise RegistryError(
                expected_found(
                    "reference", "sha256: followed by 4 to 64 lowercase hex digits", text
                )
            )
        return Ref(sha256=prefix)
    name, _, selector = text.partition("@")
    if not NAME_RE.fullmatch(name) or ("@" in text and not selector):
        raise RegistryError(expected_found("reference", REF_HELP, text))
    if not selector or selector == LATEST:
        return Ref(name=name, alias=LATEST)
    if VERSION_RE.fullmatch(selector):
        return Ref(name=name, version=check_version(selector))
    if NAME_RE.fullmatch(selector) and not NUMERIC_RE.fullmatch(selector):
        return Ref(name=name, alias=selector)
    raise RegistryError(expected_found("reference", REF_HELP, text))
