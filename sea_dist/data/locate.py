"""Find a benchmark file in the places a user may have put it, in a fixed order.

Order (the first folder that holds the file wins, file by file):

1. ``evaluate.data_dir`` (the config; passed in by the caller),
2. ``data.data_dir`` (the entry layer fills it from ``$SEA_DIST_DATA_DIR``),
3. the data cache that ``sea-dist data fetch`` fills (``data.cache_dir``, else
   :func:`sea_dist.data.fetch.default_data_cache_dir`),
4. ``../shared/data`` next to the working directory or the checkout.

then, with :func:`find_or_fetch_benchmark_file`, a download of the pinned source into the cache
(once per source and process; ``data.fetch: false``, or ``$SEA_DIST_DATA_FETCH=never`` through
the entry layer, turns it off). When that is not possible either (offline),
:func:`missing_data_hint` gives the one console line that says what is missing and the command
that fetches it.

This module never reads the environment: :mod:`sea_dist.cli.environment` puts the variables
into the :class:`~sea_dist.config.DataConfig` the functions here take (``data``; None means the
library defaults: no second folder, the default cache, fetching on, the pinned sources).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sea_dist.data.fetch import data_cache_dir, fetch_source
from sea_dist.data.sources import SOURCES, source_of
from sea_dist.errors import DataError

if TYPE_CHECKING:  # the data package loads no pydantic at import; callers pass the section
    from sea_dist.config import DataConfig

log = logging.getLogger(__name__)

FETCH_ENV = "SEA_DIST_DATA_FETCH"
"""``auto`` (default): download a missing pinned file once; ``never`` (or ``0``, ``off``,
``no``): only look. Read by the entry layer into ``data.fetch``; named here for messages."""
FETCH_OFF = ("never", "0", "off", "no")
"""Values of :data:`FETCH_ENV` that turn automatic fetching off."""
FETCH_DEFAULT = True
"""Whether a missing pinned file is downloaded when ``data.fetch`` is unset (tests set False)."""
AUTO_FETCH_TIMEOUT_S = 15.0
"""Per socket operation: an offline machine fails at once, a dead mirror within this."""
_attempted: set[tuple[str, str, str]] = set()

DATA_DIR_ENV = "SEA_DIST_DATA_DIR"
"""Read by the entry layer into ``data.data_dir``; named here for messages."""
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILES = {
    "truthfulqa": Path("truthfulqa") / "TruthfulQA.csv",
    "bbq": Path("bbq") / "bbq-validation-disambig.jsonl",
}
"""Default file of each benchmark source, relative to the data folder."""


def default_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The benchmark data folder.

    Args:
        data_dir: ``data.data_dir`` (``$SEA_DIST_DATA_DIR`` through the entry layer).

    Returns:
        ``data_dir`` when given (even if it does not exist, so errors name it); else
        ``../shared/data`` relative to the working directory or to the repository root, the
        first that exists; else None.
    """
    if data_dir:
        return Path(data_dir).expanduser()
    return shared_data_dir()


def shared_data_dir() -> Path | None:
    """``../shared/data`` from the working directory, else from the checkout (first that exists)."""
    for base in (Path.cwd(), REPO_ROOT):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate.resolve()
    return None


def default_path(source: str, data: DataConfig | None = None) -> Path:
    """Default file for ``truthfulqa`` or ``bbq``, found (or fetched) in the data locations.

    Args:
        source: ``truthfulqa`` or ``bbq``.
        data: the data section (its ``data_dir``, ``cache_dir``, ``fetch``, ``source_url``).

    Raises:
        DataError: no data folder is found, or the source has no default file.
    """
    if source not in DEFAULT_FILES:
        raise DataError(
            f"data.path: expected a file path for source {source!r}, found None; set data.path"
        )
    path = find_or_fetch_benchmark_file(DEFAULT_FILES[source], data=data)
    if path is None:
        raise DataError(missing_data_hint(source, data=data) + " (or set data.path)")
    return path


CONFIG_ORIGIN = "evaluate.data_dir"
ENV_ORIGIN = f"${DATA_DIR_ENV}"
CACHE_ORIGIN = "data cache"
SHARED_ORIGIN = "../shared/data"


@dataclass(frozen=True)
class Location:
    """A folder that may hold benchmark files, and why it is searched (``origin``)."""

    origin: str
    folder: Path


def data_locations(
    config_data_dir: str | Path | None = None, *, data: DataConfig | None = None
) -> list[Location]:
    """The folders searched for benchmark files, in order (see the module doc).

    Args:
        config_data_dir: ``evaluate.data_dir`` of the config, if set.
        data: the data section: its ``data_dir`` is searched second (origin
            ``$SEA_DIST_DATA_DIR``, where the entry layer takes it from) and its ``cache_dir``
            is the data cache.
    """
    locations = []
    if config_data_dir:
        locations.append(Location(CONFIG_ORIGIN, Path(config_data_dir).expanduser()))
    if data is not None and data.data_dir:
        locations.append(Location(ENV_ORIGIN, Path(data.data_dir).expanduser()))
    locations.append(Location(CACHE_ORIGIN, data_cache_dir(_cache_of(data))))
    shared = shared_data_dir()
    if shared is not None:
        locations.append(Location(SHARED_ORIGIN, shared))
    return locations


def _cache_of(data: DataConfig | None) -> str | None:
    return None if data is None else data.cache_dir


def locate_benchmark_file(
    relative_path: str | Path,
    config_data_dir: str | Path | None = None,
    *,
    data: DataConfig | None = None,
) -> tuple[Location, Path] | None:
    """Where ``relative_path`` (``truthfulqa/TruthfulQA.csv``) is found, with its origin."""
    for location in data_locations(config_data_dir, data=data):
        path = location.folder / relative_path
        if path.is_file():
            return location, path
    return None


def find_benchmark_file(
    relative_path: str | Path,
    config_data_dir: str | Path | None = None,
    *,
    data: DataConfig | None = None,
) -> Path | None:
    """The first existing ``<folder>/<relative_path>`` in the lookup order, else None.

    Args:
        relative_path: the file below a data folder, e.g. ``truthfulqa/TruthfulQA-1.csv``.
        config_data_dir: ``evaluate.data_dir`` of the config, if set.
        data: the data section (see :func:`data_locations`).
    """
    found = locate_benchmark_file(relative_path, config_data_dir, data=data)
    return None if found is None else found[1]


def auto_fetch_enabled(data: DataConfig | None = None) -> bool:
    """Whether a missing pinned file may be downloaded: ``data.fetch``, else
    :data:`FETCH_DEFAULT`."""
    if data is not None and data.fetch is not None:
        return data.fetch
    return FETCH_DEFAULT


def find_or_fetch_benchmark_file(
    relative_path: str | Path,
    config_data_dir: str | Path | None = None,
    *,
    data: DataConfig | None = None,
) -> Path | None:
    """:func:`find_benchmark_file`, else download the pinned source that provides the file into
    the data cache (verified, atomic: :func:`sea_dist.data.fetch.fetch_source`) and look again.

    A source is tried once per process, cache and mirror, so an offline run does not retry for
    every file; a failure is logged in one line and gives None (the caller prints the hint).
    """
    found = find_benchmark_file(relative_path, config_data_dir, data=data)
    if found is not None or not auto_fetch_enabled(data):
        return found
    source = source_of(str(relative_path))
    if source is None:
        return None
    cache = data_cache_dir(_cache_of(data))
    mirror = None if data is None else data.source_url
    attempt = (source, str(cache), mirror or "")
    if attempt in _attempted:
        return None
    _attempted.add(attempt)
    log.info("%s is not on this machine; fetching the pinned %s files", relative_path, source)
    try:
        fetch_source(source, cache_dir=cache, base_url=mirror, timeout=AUTO_FETCH_TIMEOUT_S)
    except DataError as error:
        log.warning("automatic fetch of %s failed: %s", source, error)
        return None
    return find_benchmark_file(relative_path, config_data_dir, data=data)


def missing_data_hint(name: str | Path, *, data: DataConfig | None = None) -> str:
    """One console line: what is missing, where it was looked for, and the exact fix.

    Args:
        name: a source name (``truthfulqa``, ``bbq``) or a file below a data folder
            (``truthfulqa/TruthfulQA-1.csv``).
        data: the data section (its ``cache_dir`` is the cache the line names).

    Returns:
        e.g. ``truthfulqa/TruthfulQA.csv: expected it in evaluate.data_dir, $SEA_DIST_DATA_DIR,
        the data cache (~/.cache/sea-dist/data) or ../shared/data, found none; fix: sea-dist
        data fetch truthfulqa``.
    """
    text = str(name).replace(os.sep, "/")
    source = text if text in SOURCES else source_of(text)
    if text in SOURCES:
        what = f"{text} data ({', '.join(f.relative_path for f in SOURCES[text].files)})"
    else:
        what = text
    where = (
        f"{CONFIG_ORIGIN}, {ENV_ORIGIN}, the {CACHE_ORIGIN} ({data_cache_dir(_cache_of(data))}) "
        f"or {SHARED_ORIGIN}"
    )
    if source is not None:
        fix = f"fix: sea-dist data fetch {source}"
    else:
        fix = f"fix: put it below the folder named by {CONFIG_ORIGIN} or {ENV_ORIGIN}"
    return f"{what}: expected it in {where}, found none; {fix}"
