"""Download the pinned benchmark files into the data cache, verified and atomically.

A file is streamed into a hidden temporary file next to its destination, never past its pinned
size, and renamed into place only when its length and sha256 are the pinned ones. Whatever goes
wrong (a server that sends more, less or other bytes, a refused connection, a full disk), the
temporary file is removed, so the cache holds either the verified file or nothing: a reader
never sees a partial download, and a rerun starts clean.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sea_dist.data.sources import DataSource, SourceFile, get_source
from sea_dist.errors import DataError, expected_found

CACHE_ENV = "SEA_DIST_DATA_CACHE"
"""The variable the entry layer (:mod:`sea_dist.cli.environment`) reads into ``data.cache_dir``
(else ``$SEA_DIST_CACHE/data``); named here for messages, never read by this module."""
CHUNK_BYTES = 1 << 16
DEFAULT_TIMEOUT_S = 60.0
"""Per socket operation (connect, each read), not for the whole download."""


@dataclass(frozen=True)
class FetchedFile:
    """One file of a fetch: where it is and whether this call downloaded it."""

    relative_path: str
    path: Path
    downloaded: bool


def default_data_cache_dir() -> Path:
    """The library's data cache: ``~/.cache/sea-dist/data``."""
    return Path.home() / ".cache" / "sea-dist" / "data"


def data_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The data cache folder (it may not exist yet).

    Args:
        cache_dir: an explicit folder (``--cache-dir`` or ``data.cache_dir``, which the entry
            layer fills from ``$SEA_DIST_DATA_CACHE`` or ``$SEA_DIST_CACHE/data``).

    Returns:
        ``cache_dir`` (user-expanded), else :func:`default_data_cache_dir`.
    """
    if cache_dir:
        return Path(cache_dir).expanduser()
    return default_data_cache_dir()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def is_verified(path: Path, pinned: SourceFile) -> bool:
    """Whether ``path`` is a file with exactly the pinned size and sha256."""
    try:
        return path.stat().st_size == pinned.size and file_sha256(path) == pinned.sha256
    except OSError:
        return False


def fetch_source(
    name: str,
    *,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    sources: Mapping[str, DataSource] | None = None,
) -> list[FetchedFile]:
    """Make every file of source ``name`` present and verified in the data cache.

    A file already cached with the pinned size and sha256 is not downloaded again; one that
    differs is replaced. Files are fetched in order and each one is atomic, so a failure leaves
    the earlier files in place and nothing of the failed one.

    Args:
        name: a key of :data:`sea_dist.data.sources.SOURCES` (``truthfulqa``, ``bbq``).
        cache_dir: the cache folder (default :func:`data_cache_dir`).
        base_url: replaces the source's base URL (a mirror: ``--source-url`` or
            ``data.source_url``); default the pinned one.
        timeout: seconds per socket operation.
        sources: the source table (default the pinned one).

    Returns:
        One entry per file, in the source's order.

    Raises:
        DataError: unknown source, unreachable server, HTTP error, wrong size or checksum, or
            a cache folder that cannot be written; one line, with the fix.
    """
    source = get_source(name, sources)
    root = data_cache_dir(cache_dir)
    base = source.resolved_base_url(base_url)
    fetched = []
    for pinned in source.files:
        destination = root / pinned.relative_path
        if is_verified(destination, pinned):
            fetched.append(FetchedFile(pinned.relative_path, destination, downloaded=False))
            continue
        download_file(pinned.url(base), destination, pinned, timeout=timeout)
        fetched.append(FetchedFile(pinned.relative_path, destination, downloaded=True))
    return fetched


def download_file(
    url: str, destination: Path, pinned: SourceFile, *, timeout: float = DEFAULT_TIMEOUT_S
) -> Path:
    """Download ``url`` to ``destination`` only if it is exactly the pinned file.

    Reads at most ``pinned.size + 1`` bytes (one more, to tell "too long" from "complete"),
    so a server that never stops costs bounded memory, disk and time.

    Returns:
        ``destination``.

    Raises:
        DataError: see :func:`fetch_source`. No temporary file is left behind.
    """
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, on every path
            dir=destination.parent, prefix=f".{destination.name}.", suffix=".part", delete=False
        )
    except OSError as error:
        raise DataError(
            expected_found(
                "data cache",
                f"a writable folder at {destination.parent}",
                f"{type(error).__name__}: {error.strerror or error}",
                "pass --cache-dir DIR or set $SEA_DIST_DATA_CACHE",
            )
        ) from None
    temporary = Path(handle.name)
    try:
        with handle:
            digest = _stream(url, handle, pinned, timeout)
            handle.flush()
            os.fsync(handle.fileno())
        if digest != pinned.sha256:
            raise DataError(
                expected_found(
                    f"download of {pinned.relative_path} from {url}",
                    f"sha256 {pinned.sha256}",
                    f"sha256 {digest}",
                    "the source changed or the download was altered; nothing was cached",
                )
            )
        os.replace(temporary, destination)  # atomic on one file system: same folder
    except OSError as error:
        raise DataError(
            expected_found(
                f"data cache file {destination}",
                "a completed write",
                f"{type(error).__name__}: {error.strerror or error}",
                "free space or pass --cache-dir DIR",
            )
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
    return destination


def _stream(url: str, handle: IO[bytes], pinned: SourceFile, timeout: float) -> str:
    """Copy the response body into ``handle`` within the size bound; return its sha256."""
    what = f"download of {pinned.relative_path} from {url}"
    fix = "check the network or set $SEA_DIST_DATA_SOURCE_URL to a mirror, then rerun"
    changed = "the source is not the pinned file; nothing was cached"
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) pins
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.strip().isdigit():
                if int(declared) != pinned.size:  # refuse before reading anything
                    raise DataError(
                        expected_found(
                            what, f"{pinned.size} bytes", f"{declared} bytes declared", changed
                        )
                    )
            while received <= pinned.size:
                block = response.read(min(CHUNK_BYTES, pinned.size + 1 - received))
                if not block:
                    break
                received += len(block)
                digest.update(block)
                handle.write(block)
    except urllib.error.HTTPError as error:
        raise DataError(expected_found(what, "HTTP 200", f"HTTP {error.code}", fix)) from None
    except urllib.error.URLError as error:
        reason = getattr(error.reason, "strerror", None) or error.reason
        raise DataError(expected_found(what, "a reachable server", str(reason), fix)) from None
    except http.client.IncompleteRead as error:
        # The server promised Content-Length bytes and closed early.
        raise DataError(
            expected_found(
                what, f"{pinned.size} bytes", f"{received + len(error.partial)} bytes", fix
            )
        ) from None
    except (http.client.HTTPException, TimeoutError, ConnectionError) as error:
        raise DataError(
            expected_found(what, "a complete response", f"{type(error).__name__}", fix)
        ) from None
    if received > pinned.size:
        raise DataError(
            expected_found(
                what, f"{pinned.size} bytes", f"more than {pinned.size} bytes (stopped)", changed
            )
        )
    if received < pinned.size:
        raise DataError(expected_found(what, f"{pinned.size} bytes", f"{received} bytes", fix))
    return digest.hexdigest()
