"""What anchors a ``manifest.json``: a registry's completion marker, or a download's digest file.

A version ``v`` of ``name`` in a registry is visible only once ``<name>/complete/<v>.json`` holds
a valid marker, written last by the publisher::

    {"version": v, "sha256": "<hex sha256 of projections.safetensors>",
     "manifest_sha256": "<hex sha256 of manifest.json>",
     "summary_sha256": "<hex sha256 of the version's listing-index row>", "completed_at": "..."}

``sha256`` pins the tensors and ``manifest_sha256`` every manifest field (site, combine, model
id, feature map...), which no tensor shape can check. Markers written before
``manifest_sha256`` (or ``summary_sha256``) existed lack it. An empty or unparseable marker (a
publisher that died while writing it) is *not* a marker.

A downloaded copy has no registry around it, so the download writes ``manifest.sha256`` next to
``manifest.json``: one line in the ``sha256sum`` format (``<hex>  manifest.json``). It guards
against accidental edits, not forgery; only the registry's marker is an anchor.

How a registry lists, caches and retires markers is :mod:`sea_dist.registry.markers`; this module
is the records themselves (standard library only).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sea_dist.errors import ArtifactError, expected_found
from sea_dist.format.files import MANIFEST_FILE
from sea_dist.format.hashing import sha256_hex

COMPLETE_DIR = "complete"
"""Folder of a registry name that holds the completion markers, ``complete/<v>.json``."""
DIGEST_FILE = "manifest.sha256"
"""The digest file of a downloaded copy."""
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Marker:
    """A parsed completion marker."""

    version: int
    sha256: str
    """Hex sha256 of ``projections.safetensors``."""
    manifest_sha256: str | None
    """Hex sha256 of ``manifest.json``; None in markers written by older sea-dist versions."""
    summary_sha256: str | None = None
    """Hex sha256 of the version's listing-index row (:func:`sea_dist.registry.index.row_digest`);
    None in markers written by older sea-dist versions."""


def marker_bytes(
    version: int,
    sha256: str,
    manifest_sha256: str,
    completed_at: str,
    summary_sha256: str | None = None,
) -> bytes:
    """The JSON content of ``complete/<version>.json``."""
    record: dict[str, Any] = {
        "version": version,
        "sha256": sha256,
        "manifest_sha256": manifest_sha256,
        "completed_at": completed_at,
    }
    if summary_sha256 is not None:
        record["summary_sha256"] = summary_sha256
    return json.dumps(record).encode("utf-8")


def parse_marker(raw: bytes | None, version: int) -> Marker | None:
    """The marker in ``raw`` for ``version``, or None when it is missing, empty or damaged."""
    if not raw:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    number, sha, manifest_sha = data.get("version"), data.get("sha256"), data.get("manifest_sha256")
    if isinstance(number, bool) or number != version or not isinstance(sha, str):
        return None
    if not HEX64.fullmatch(sha):
        return None
    if manifest_sha is not None and not (
        isinstance(manifest_sha, str) and HEX64.fullmatch(manifest_sha)
    ):
        return None
    summary = data.get("summary_sha256")
    if not (isinstance(summary, str) and HEX64.fullmatch(summary)):
        summary = None  # a damaged digest only costs a manifest read when listing
    return Marker(version=version, sha256=sha, manifest_sha256=manifest_sha, summary_sha256=summary)


def manifest_digest(manifest_raw: bytes) -> str:
    """Hex sha256 of the ``manifest.json`` bytes."""
    return sha256_hex(manifest_raw)


def check_manifest_digest(
    manifest_raw: bytes, expected: str, what: str, anchor: str, fix: str | None = None
) -> None:
    """Refuse ``manifest.json`` bytes whose sha256 is not ``expected``.

    Args:
        manifest_raw: the manifest bytes as stored.
        expected: hex sha256 recorded at publish (marker) or download (``manifest.sha256``).
        what: where the manifest came from, for the message.
        anchor: where ``expected`` came from, for the message.
        fix: what fixes it (default: restore it or download the version again, right for a
            downloaded copy; a registry version says how to restore or retire it).

    Raises:
        ArtifactError: the digests differ (the manifest was edited after publication).
    """
    found = manifest_digest(manifest_raw)
    if found != expected:
        raise ArtifactError(
            expected_found(
                f"{what}: sha256",
                f"{expected} (recorded in {anchor})",
                found,
                "the manifest was modified after publication; "
                + (fix or "restore it or download the version again"),
            )
        )


def digest_file_bytes(manifest_raw: bytes) -> bytes:
    """Content of ``manifest.sha256`` for ``manifest_raw`` (``sha256sum`` format)."""
    return f"{manifest_digest(manifest_raw)}  {MANIFEST_FILE}\n".encode("ascii")


def parse_digest_file(raw: bytes, what: str) -> str:
    """The hex digest recorded in a ``manifest.sha256`` file.

    Raises:
        ArtifactError: the file is not one ``<64 hex>  manifest.json`` line.
    """
    try:
        fields = raw.decode("ascii").split()
    except UnicodeDecodeError:
        fields = []
    well_formed = len(fields) == 2 and fields[1].lstrip("*") == MANIFEST_FILE
    if not well_formed or not HEX64.fullmatch(fields[0]):
        raise ArtifactError(
            expected_found(
                what,
                "one line '<64 hex digits>  manifest.json'",
                raw[:100],
                "delete it and download the version again",
            )
        )
    return fields[0]
