"""The artifact manifest's writer side: code version, timestamps and the store fingerprint.

The record itself (:class:`~sea_dist.format.manifest.Manifest`, its parser and schema version) is
:mod:`sea_dist.format.manifest`.

Imports only the standard library (no pyarrow, torch, ray, dask or zarr).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
from typing import Any

from sea_dist import __version__


def fingerprint(data: Any) -> str:
    """sha256 of the canonical JSON of ``data`` (sorted keys, no whitespace)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def utc_now() -> str:
    """Current time as ISO-8601 UTC with microseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


_CODE_VERSION: str | None = None


def code_version() -> str:
    """``sea_dist.__version__`` plus ``+g<commit>`` (and ``.dirty``) when run from a git checkout.

    Never fails: without git or outside a checkout it is just the package version.
    """
    global _CODE_VERSION
    if _CODE_VERSION is not None:
        return _CODE_VERSION
    version = __version__
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if commit.returncode == 0 and commit.stdout.strip():
            version += f"+g{commit.stdout.strip()}"
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            if status.returncode == 0 and status.stdout.strip():
                version += ".dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    _CODE_VERSION = version
    return version
