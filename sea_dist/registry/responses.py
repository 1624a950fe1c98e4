"""What the HTTP client accepts from a server: bounded bodies, JSON, the registry API's schema.

A ``--registry http://...`` may point at anything: a static file server, a proxy's error page, a
hostile server with an endless body. Nothing a server sends is used before it is checked here,
and every problem is one :class:`~sea_dist.errors.RegistryError` line that names the address,
what the API promises and what came back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from typing import Any

from sea_dist.errors import RegistryError, excerpt, expected_found
from sea_dist.registry.refs import NAME_RE

MAX_JSON_BYTES = 16 << 20  # the largest API answer (a long versions list) is far below this
MAX_JSON_SECONDS = 120.0  # a JSON answer trickled byte by byte still ends
SHA256_RE = re.compile(r"[0-9a-f]{64}")

NOT_THE_API = "check that the URL is a 'sea-dist registry serve' address like http://HOST:8765"


def read_bounded(
    chunks: Iterable[bytes],
    limit: int,
    address: str,
    *,
    announced: str | None = None,
    max_seconds: float | None = None,
) -> bytes:
    """Read a body of at most ``limit`` bytes, refusing more before it is held in memory.

    Args:
        chunks: the body as it arrives (``httpx.Response.iter_raw()``: each chunk is one socket
            read, so at most one read past the limit is ever held).
        limit: the most bytes the answer may have.
        address: the URL, for messages.
        announced: the ``Content-Length`` header, refused early when it exceeds the limit.
        max_seconds: a limit on the whole read (each socket read has its own timeout).
    """
    if announced is not None and announced.strip().isdigit() and int(announced) > limit:
        raise RegistryError(_too_large(address, limit, f"Content-Length {int(announced)}"))
    started = time.monotonic()
    body: list[bytes] = []
    size = 0
    for chunk in chunks:
        body.append(chunk)
        size += len(chunk)
        if size > limit:
            raise RegistryError(_too_large(address, limit, f"more than {limit} bytes"))
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            raise RegistryError(
                expected_found(
                    address,
                    f"a complete answer within {max_seconds:.0f} s",
                    f"{size} bytes after {time.monotonic() - started:.0f} s",
                    "the server is too slow or is not a sea-dist registry; " + NOT_THE_API,
                )
            )
    return b"".join(body)


def _too_large(address: str, limit: int, found: str) -> str:
    return expected_found(
        address, f"an answer of at most {limit} bytes", found, "refused unread; " + NOT_THE_API
    )


def parse_json(body: bytes, content_type: str | None, address: str) -> Any:
    """Decode a JSON answer, refusing anything that is not JSON (HTML pages, binary files)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise RegistryError(
            expected_found(
                address,
                "a JSON answer (Content-Type application/json)",
                f"{media or 'no Content-Type'} starting {excerpt(body[:40])}",
                NOT_THE_API,
            )
        )
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise RegistryError(
            expected_found(address, "a valid JSON document", excerpt(body[:60]), NOT_THE_API)
        ) from None


def _fail(address: str, expected: str, found: object) -> RegistryError:
    return RegistryError(
        expected_found(
            address, expected, found, "the server does not speak the registry API; " + NOT_THE_API
        )
    )


def field(data: Any, key: str, kind: type | tuple[type, ...], address: str) -> Any:
    """``data[key]``, checked to be an object with that key of the given JSON type."""
    if not isinstance(data, dict):
        raise _fail(address, f"a JSON object with {key!r}", type(data).__name__)
    if key not in data:
        raise _fail(address, f"a JSON object with {key!r}", f"keys {sorted(data)[:8]}")
    value = data[key]
    # bool is an int in Python, never a valid count or version in the API
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _fail(address, f"{key!r} of type {names}", f"{type(value).__name__} {excerpt(value)}")
    return value


def check_name_value(value: Any, key: str, address: str) -> str:
    """A registry name as the API returns it."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise _fail(address, f"{key!r} to be an artifact name", value)
    return value


def check_version(value: Any, key: str, address: str) -> int:
    """A version number (an int >= 1)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail(address, f"{key!r} to be a version number (an integer >= 1)", value)
    return value


def check_sha256(value: Any, key: str, address: str) -> str:
    """A lower-case hex sha256."""
    if not isinstance(value, str) or not SHA256_RE.fullmatch(value):
        raise _fail(address, f"{key!r} to be a 64-digit lower-case hex sha256", value)
    return value


def names_answer(data: Any, address: str) -> list[str]:
    """``{"names": [name, ...]}``."""
    return [check_name_value(n, "names[]", address) for n in field(data, "names", list, address)]


def versions_answer(data: Any, name: str, address: str) -> list[dict[str, Any]]:
    """``{"versions": [row, ...]}``, each row of this name with a version, sha256 and time."""
    rows = field(data, "versions", list, address)
    for row in rows:
        if field(row, "name", str, address) != name:
            raise _fail(address, f"rows of {name!r}", row["name"])
        check_version(field(row, "version", int, address), "version", address)
        check_sha256(field(row, "sha256", str, address), "sha256", address)
        field(row, "created_at", str, address)
    return list(rows)


def aliases_answer(data: Any, address: str) -> dict[str, int]:
    """``{"aliases": {alias: version}}``."""
    aliases = field(data, "aliases", dict, address)
    return {str(k): check_version(v, f"aliases[{k!r}]", address) for k, v in aliases.items()}


def history_answer(data: Any, address: str) -> list[dict[str, Any]]:
    """``{"history": [move, ...]}``, each move a JSON object (old records vary in fields)."""
    moves = field(data, "history", list, address)
    for move in moves:
        if not isinstance(move, dict):
            raise _fail(address, "history entries that are JSON objects", move)
    return list(moves)


def diff_answer(data: Any, address: str) -> dict[str, Any]:
    """The diff document (see :func:`sea_dist.registry.diff.diff_artifacts`)."""
    for key, kind in (("a", str), ("b", str), ("identical", bool), ("fields", dict)):
        field(data, key, kind, address)
    for layer in field(data, "layers", list, address):
        field(layer, "layer", int, address)
    return dict(data)
