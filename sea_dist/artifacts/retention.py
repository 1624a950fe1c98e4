"""Retention: ``gc --keep N`` removes old versions, never one an alias points to.

For each name, the ``keep`` newest complete versions stay, and so does every version a user alias
points to. A removed version loses its completion marker first (readers stop seeing it at once),
then its files. Claims stay, so a removed version number is never handed out again. Staging
folders of publishes that died more than a day ago are removed too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sea_dist.artifacts.manifest import MANIFEST_FILE, PROJECTIONS_FILE
from sea_dist.errors import RegistryError, expected_found

if TYPE_CHECKING:
    from sea_dist.artifacts.registry import Registry

STALE_STAGING = dt.timedelta(days=1)


@dataclass(frozen=True)
class GcEntry:
    """One thing gc removed (or would remove with ``dry_run``)."""

    name: str
    kind: str
    """``version`` or ``staging``."""
    target: str
    """``name@v`` for a version, the staging token otherwise."""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "target": self.target}


def collect_garbage(
    registry: Registry, keep: int, name: str | None = None, dry_run: bool = False
) -> list[GcEntry]:
    """Remove old versions (see module doc); returns what was (or would be) removed.

    Args:
        registry: the registry.
        keep: how many newest versions to keep per name (>= 1, so ``latest`` never moves back).
        name: only this name (default: every name).
        dry_run: list, remove nothing.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise RegistryError(expected_found("gc --keep", "an integer >= 1", keep))
    storage = registry.storage
    names = [name] if name else registry.names()
    removed: list[GcEntry] = []
    for current in names:
        versions = registry.complete_versions(current)
        # A name with no complete version has no aliases to honour but may hold stale staging.
        aliased = registry.aliases(current).values() if versions else ()
        protected = set(versions[-keep:]) | set(aliased)
        for version in versions:
            if version in protected:
                continue
            removed.append(GcEntry(current, "version", f"{current}@{version}"))
            if dry_run:
                continue
            storage.remove(current, "complete", f"{version}.json")
            for file_name in (MANIFEST_FILE, PROJECTIONS_FILE):
                storage.remove(current, "versions", str(version), file_name)
            storage.remove(current, "versions", str(version), recursive=True)
        cutoff = dt.datetime.now(dt.UTC) - STALE_STAGING
        for token in storage.list_dir(current, "staging"):
            stamps = [
                storage.modified(current, "staging", token, f)
                for f in storage.list_dir(current, "staging", token)
            ]
            if not stamps:  # an empty folder (local only): judge by the folder's own time
                stamps = [storage.modified(current, "staging", token)]
            known = [s for s in stamps if s is not None]
            if known and max(known) < cutoff:
                removed.append(GcEntry(current, "staging", token))
                if not dry_run:
                    storage.remove(current, "staging", token, recursive=True)
    return removed
