"""The artifact manifest's writer side: code version, timestamps and the store fingerprint.

The record itself (:class:`Manifest`, its parser and schema version) is
:mod:`sea_dist.format.manifest`, re-exported here for the registry modules.

Imports only the standard library (no pyarrow, torch, ray, dask or zarr).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
from typing import Any

# Re-exported: the artifact modules read the names from here.
from sea_dist.format.files import ARTIFACT_FILES as ARTIFACT_FILES
from sea_dist.format.files import MANIFEST_FILE as MANIFEST_FILE
from sea_dist.format.files import PROJECTIONS_FILE as PROJECTIONS_FILE
from sea_dist.format.manifest import MANIFEST_SCHEMA_VERSION as MANIFEST_SCHEMA_VERSION
from sea_dist.format.manifest import LayerSummary as LayerSummary
from sea_dist.format.manifest import Manifest as Manifest
from sea_dist.format.manifest import manifest_from_dict as manifest_from_dict
from sea_dist.format.manifest import manifest_from_json as manifest_from_json
from sea_dist.format.manifest import parse_evaluation as parse_evaluation
from sea_dist.format.manifest import parse_recipe as parse_recipe


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
    from sea_dist import __version__

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
