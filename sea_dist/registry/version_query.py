"""Queries over the versions of a registry: filtering listings and finding a content hash.

Pure functions over what the registry has already read (listing rows, aliases, markers): no
storage access here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sea_dist.errors import RegistryError, expected_found
from sea_dist.format.anchors import Marker
from sea_dist.registry.refs import LATEST, NotFoundError, Resolved


def parse_time(value: str, what: str) -> dt.datetime:
    """Parse an ISO-8601 date or datetime (naive means UTC)."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise RegistryError(
            expected_found(
                what, "an ISO-8601 date or time like 2026-01-31 or 2026-01-31T12:00:00Z", value
            )
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def select_versions(
    name: str,
    rows: Iterable[Mapping[str, Any]],
    aliases: Mapping[str, int],
    latest: int | None,
    *,
    model_id: str | None = None,
    dataset: str | None = None,
    after: str | None = None,
    before: str | None = None,
) -> list[dict[str, Any]]:
    """The listing rows of ``name`` that pass the filters, each with its ``ref`` and labels.

    Args:
        name: artifact name.
        rows: listing-index rows, oldest first.
        aliases: user alias -> version.
        latest: the version ``name@latest`` resolves to (labelled ``latest``).
        model_id: keep versions fitted on this model id.
        dataset: keep versions whose demonstrations fingerprint starts with this.
        after: keep versions created at or after this ISO-8601 time (naive = UTC).
        before: keep versions created before this time.
    """
    start = parse_time(after, "after") if after else None
    end = parse_time(before, "before") if before else None
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    result = []
    for row in rows:
        if model_id is not None and row["model_id"] != model_id:
            continue
        if dataset is not None and not row["demonstrations_fingerprint"].startswith(dataset):
            continue
        if start or end:
            created = parse_time(row["created_at"], "created_at")
            if start and created < start or end and created >= end:
                continue
        labels = by_version.get(row["version"], [])
        labels = ([LATEST] if row["version"] == latest else []) + labels
        result.append({**row, "ref": f"{name}@{row['version']}", "aliases": labels})
    return result


def match_sha_prefix(prefix: str, markers: Mapping[str, Mapping[int, Marker]]) -> Resolved:
    """The version whose content sha256 starts with ``prefix``.

    The markers hold every version's content sha256: no index, no manifest, no write. The same
    content published several times under one name resolves to the newest version.

    Args:
        prefix: lowercase hex digits.
        markers: name -> version -> its valid completion marker.

    Raises:
        NotFoundError: no version matches.
        RegistryError: versions of different content or names match.
    """
    matches = [
        Resolved(name, version, marker.sha256)
        for name, by_version in markers.items()
        for version, marker in by_version.items()
        if marker.sha256.startswith(prefix)
    ]
    if not matches:
        raise NotFoundError(
            expected_found(
                "reference", "a published content sha256", f"sha256:{prefix}", "check the hash"
            )
        )
    if len({(m.name, m.sha256) for m in matches}) > 1:
        found = ", ".join(m.ref for m in matches[:5])
        raise RegistryError(
            expected_found(
                "reference",
                "a sha256 prefix matching one artifact",
                f"sha256:{prefix} ({found})",
                "give more hex digits or use name@version",
            )
        )
    return max(matches, key=lambda m: m.version)
