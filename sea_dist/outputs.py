"""Where outputs land: relative locations anchored to a base that outlives the process.

A Ray job submitted with ``--working-dir .`` runs inside Ray's temporary copy of the checkout
(``<temp>/session_*/runtime_resources/working_dir_files/_ray_pkg_<hash>``), which Ray deletes.
A relative ``sea-runs/...`` there would publish into a folder that disappears, so:

- with an output base (``$SEA_DIST_OUTPUT_BASE``, an absolute folder or an fsspec URL named in
  the runtime env's ``env_vars``; the entry layer reads it and passes it here as ``base``),
  every relative output location is resolved against it;
- without one, relative locations resolve against the working directory as usual, but a location
  that ends up inside Ray's temporary working-directory copy is refused with one line that says
  which setting to give.

fsspec URLs (``s3://...``, ``memory://...``) are never changed. This module never reads the
environment (:mod:`sea_dist.cli.environment` does).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from sea_dist.config import SeaConfig, with_overrides
from sea_dist.errors import ConfigError, excerpt

OUTPUT_BASE_ENV = "SEA_DIST_OUTPUT_BASE"
RAY_PACKAGE_PREFIX = "_ray_pkg_"  # how Ray names an unpacked working_dir package
RAY_PACKAGE_PARENT = "working_dir_files"

# (section, field) of every location a run writes.
OUTPUT_FIELDS = (("store", "url"), ("fit", "out"), ("publish", "registry"), ("evaluate", "out"))


def is_url(location: str) -> bool:
    """An fsspec URL other than ``file://`` (those are local paths)."""
    return "://" in location and not location.startswith("file://")


def ray_working_dir(cwd: Path) -> Path | None:
    """The root of Ray's temporary working-directory copy that ``cwd`` lies in, or None."""
    parts = cwd.parts
    for i in range(1, len(parts)):
        if parts[i].startswith(RAY_PACKAGE_PREFIX) and parts[i - 1] == RAY_PACKAGE_PARENT:
            return Path(*parts[: i + 1])
    return None


def output_base(value: str | None) -> str | None:
    """An output base (the value of ``$SEA_DIST_OUTPUT_BASE``), checked; None when None or empty.

    Args:
        value: an absolute folder (``~`` expanded, ``file://`` stripped) or an fsspec URL.

    Returns:
        The folder as an absolute path string, or the URL unchanged; None for no base.

    Raises:
        ConfigError: the base is a relative path (it would move with the working directory).
    """
    base = (value or "").strip()
    if not base:
        return None
    local = base.removeprefix("file://")
    if not is_url(base) and not Path(local).expanduser().is_absolute():
        raise ConfigError(
            f"{OUTPUT_BASE_ENV}: expected an absolute folder or an fsspec URL such as "
            f"s3://bucket/sea-runs, found {excerpt(base)}; a relative base moves with the "
            "working directory"
        )
    return base if is_url(base) else str(Path(local).expanduser())


def anchor_location(
    location: str, label: str, *, base: str | None = None, cwd: Path | None = None
) -> str:
    """The absolute location that ``location`` (a path or URL) names.

    Args:
        location: as written in the config or on the command line.
        label: the setting's name, for messages (``store.url``, ``--store``).
        base: what relative paths resolve against (default: ``cwd``).
        cwd: the working directory (default: the process's).

    Raises:
        ConfigError: the location would lie inside Ray's temporary working-directory copy.
    """
    if is_url(location):
        return location
    here = (cwd or Path.cwd()).resolve()
    path = Path(location.removeprefix("file://")).expanduser()
    if not path.is_absolute() and base is not None:
        if is_url(base):
            return f"{base.rstrip('/')}/{path.as_posix()}"
        path = Path(base) / path
    absolute = Path(os.path.normpath(here / path))
    uploaded = ray_working_dir(here)
    if uploaded is not None and absolute.is_relative_to(uploaded):
        raise ConfigError(
            f"{label}: expected a location that outlives the Ray job, found {excerpt(location)} "
            f"inside Ray's temporary working_dir copy {uploaded.name} (deleted after the job); "
            f"set {OUTPUT_BASE_ENV} in the runtime env's env_vars to an absolute shared folder "
            f"or s3:// URL, or make {label} absolute"
        )
    return str(absolute)


def anchored(location: str, label: str, *, base: str | None = None) -> str:
    """:func:`anchor_location` against ``base`` (checked by :func:`output_base`; None: no base)
    and the process's cwd; an absolute location or a URL keeps its place."""
    return anchor_location(location, label, base=output_base(base))


def anchor_outputs(
    config: SeaConfig, *, base: str | None = None, cwd: Path | None = None
) -> SeaConfig:
    """``config`` with every output location absolute (see the module docstring).

    Idempotent: an anchored config is returned unchanged. Every problem is reported at once.

    Args:
        config: the run config.
        base: the output base (``$SEA_DIST_OUTPUT_BASE`` through the entry layer), checked by
            :func:`output_base`; None resolves against ``cwd``.
        cwd: the working directory (default: the process's).

    Raises:
        ConfigError: one line per location that cannot be anchored (or a relative ``base``).
    """
    base = output_base(base)
    problems: list[str] = []
    sections: dict[str, dict[str, str]] = {}
    for section, field in OUTPUT_FIELDS:
        value = getattr(getattr(config, section), field)
        try:
            anchored = anchor_location(value, f"{section}.{field}", base=base, cwd=cwd)
        except ConfigError as error:
            problems += error.problems
            continue
        if anchored != value:
            sections.setdefault(section, {})[field] = anchored
    if problems:
        raise ConfigError(problems)
    return with_overrides(config, **sections) if sections else config


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (temporary sibling, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
