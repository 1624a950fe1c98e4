"""Retention: ``gc --keep N`` removes old versions, never one an alias points to.

For each name, the ``keep`` newest complete versions stay, and so does every version a user alias
points to. With ``damaged``, versions whose ``manifest.json`` or ``projections.safetensors`` is
gone (a folder deleted by hand) are retired too, unless an alias points to one (then the alias
must be moved first, and gc says so). Claims stay, so a removed version number is never handed
out again. Staging folders of publishes that died more than a day ago are removed too.

Removing a version races with ``registry alias`` moving an alias to it. Both sides write first
and check the other's write second, so at least one of them sees the other:

1. gc *retires* the version: its completion marker moves from ``complete/<v>.json`` to
   ``retired/<v>.json`` (readers stop seeing the version at once);
2. gc reads the aliases again; if one now points to the version, the marker moves back and the
   version is kept;
3. only then are the files removed, and the retired marker last.

:func:`sea_dist.registry.aliases.move_alias` writes the pointer, then checks the marker: while it
is retired it waits for gc's decision (bounded), and when the version is gone it puts the
previous pointer back and raises ``NotFoundError``. So an alias never keeps pointing to a version
gc removed. A gc killed between 1 and 3 leaves ``retired/<v>.json``; the next gc finishes the
removal, or restores the marker if an alias points to the version by then.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sea_dist.errors import RegistryError, expected_found
from sea_dist.format.anchors import COMPLETE_DIR
from sea_dist.format.files import MANIFEST_FILE, PROJECTIONS_FILE
from sea_dist.registry import aliases as alias_ops
from sea_dist.registry.markers import RETIRED_DIR, complete_markers
from sea_dist.registry.protocol import WritableRegistry
from sea_dist.registry.refs import check_name
from sea_dist.registry.storage import Storage

STALE_STAGING = dt.timedelta(days=1)


@dataclass(frozen=True)
class GcEntry:
    """One thing gc removed (or would remove with ``dry_run``), or a damaged version it kept."""

    name: str
    kind: str
    """``version``, ``damaged`` (a version whose files are gone), ``staging``, or ``kept`` (a
    damaged version an alias points to: not removed, see ``note``)."""
    target: str
    """``name@v`` for a version, the staging token otherwise."""
    note: str = ""
    """For ``kept``: why, and what to do."""

    def to_dict(self) -> dict[str, str]:
        data = {"name": self.name, "kind": self.kind, "target": self.target}
        return {**data, "note": self.note} if self.note else data


def _marker(version: int) -> str:
    return f"{version}.json"


def _remove_files(storage: Storage, name: str, version: int) -> None:
    for file_name in (MANIFEST_FILE, PROJECTIONS_FILE):
        storage.remove(name, "versions", str(version), file_name)
    storage.remove(name, "versions", str(version), recursive=True)


def retire_version(storage: Storage, name: str, version: int) -> bool:
    """Remove ``name@version`` unless an alias points to it when it is taken out of view.

    Returns:
        True when the version was removed; False when an alias pointed to it after the
        marker was retired (the marker is back) or the version was already gone.
    """
    try:
        storage.move((name, COMPLETE_DIR, _marker(version)), (name, RETIRED_DIR, _marker(version)))
    except FileNotFoundError:
        return False  # removed by another gc meanwhile
    if version in alias_ops.read_aliases(storage, name).values():
        # An alias moved to it after the aliases were listed: it stays.
        storage.move((name, RETIRED_DIR, _marker(version)), (name, COMPLETE_DIR, _marker(version)))
        return False
    _remove_files(storage, name, version)
    storage.remove(name, RETIRED_DIR, _marker(version))
    return True


def _finish_retired(storage: Storage, name: str, dry_run: bool) -> list[GcEntry]:
    """Leftovers of a gc that was killed mid-removal: finish them, or restore aliased ones."""
    done = []
    aliased = set(alias_ops.read_aliases(storage, name).values())
    for entry in storage.list_dir(name, RETIRED_DIR):
        stem = entry.removesuffix(".json")
        if stem == entry or not stem.isdigit():
            continue
        version = int(stem)
        if dry_run:
            continue
        if version in aliased:
            storage.move((name, RETIRED_DIR, entry), (name, COMPLETE_DIR, entry))
            continue
        _remove_files(storage, name, version)
        storage.remove(name, RETIRED_DIR, entry)
        done.append(GcEntry(name, "version", f"{name}@{version}"))
    return done


def damaged_versions(registry: WritableRegistry, name: str) -> dict[int, str]:
    """Complete versions of ``name`` that cannot be listed or loaded, with why.

    What a full listing reports as damaged (:func:`sea_dist.registry.index.build_listing`
    with ``rebuild``, as ``reindex`` does: a file gone, or the manifest unreadable or edited
    after publication; every manifest is read, since a query trusts the rows its markers pin).
    These are what ``gc --damaged`` retires.
    """
    from sea_dist.registry.index import build_listing  # pyarrow, an optional dependency

    markers = complete_markers(registry.storage, name)
    return dict(build_listing(registry.storage, name, markers, rebuild=True).damaged)


def collect_garbage(
    registry: WritableRegistry,
    keep: int | None,
    name: str | None = None,
    dry_run: bool = False,
    *,
    damaged: bool = False,
) -> list[GcEntry]:
    """Remove old versions (see module doc); returns what was (or would be) removed.

    Args:
        registry: the registry.
        keep: how many newest versions to keep per name (>= 1, so ``latest`` never moves back);
            None with ``damaged``: remove only damaged versions.
        name: only this name (default: every name).
        dry_run: list, remove nothing.
        damaged: also retire versions whose manifest or tensors are gone.
    """
    if keep is None and not damaged:
        raise RegistryError(expected_found("gc --keep", "an integer >= 1", keep))
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise RegistryError(expected_found("gc --keep", "an integer >= 1", keep))
    storage = registry.storage
    names = [check_name(name)] if name else registry.names()
    removed: list[GcEntry] = []
    for current in names:
        removed += _finish_retired(storage, current, dry_run)
        versions = registry.complete_versions(current)
        # A name with no complete version has no aliases to honour but may hold stale staging.
        aliases = alias_ops.read_aliases(storage, current) if versions else {}
        protected = set(versions[-keep:]) | set(aliases.values()) if keep else set(versions)
        changed = False
        broken = damaged_versions(registry, current) if damaged and versions else {}
        for version in versions:
            gone = broken.get(version)
            if version in protected and not gone:
                continue
            holders = sorted(a for a, v in aliases.items() if v == version)
            if holders:  # damaged, but an alias points to it: removing it would orphan the alias
                note = (
                    f"damaged ({gone}) but alias {', '.join(holders)} points to it; move it to "
                    f"a published version ('sea-dist registry alias {current}@N "
                    f"{holders[0]}'), then run 'sea-dist registry gc --damaged' again"
                )
                removed.append(GcEntry(current, "kept", f"{current}@{version}", note))
                continue
            entry = GcEntry(current, "damaged" if gone else "version", f"{current}@{version}")
            if dry_run:
                removed.append(entry)
            elif retire_version(storage, current, version):
                removed.append(entry)
                changed = True
        if changed:
            _refresh_index(registry, current)
        removed += _stale_staging(storage, current, dry_run)
    return removed


def _refresh_index(registry: WritableRegistry, name: str) -> None:
    from sea_dist.registry.index import build_listing  # pyarrow, an optional dependency

    build_listing(registry.storage, name, complete_markers(registry.storage, name), write=True)


def _stale_staging(storage: Storage, name: str, dry_run: bool) -> list[GcEntry]:
    removed = []
    cutoff = dt.datetime.now(dt.UTC) - STALE_STAGING
    for token in storage.list_dir(name, "staging"):
        stamps = [
            storage.modified(name, "staging", token, f)
            for f in storage.list_dir(name, "staging", token)
        ]
        if not stamps:  # an empty folder (local only): judge by the folder's own time
            stamps = [storage.modified(name, "staging", token)]
        known = [s for s in stamps if s is not None]
        if known and max(known) < cutoff:
            removed.append(GcEntry(name, "staging", token))
            if not dry_run:
                storage.remove(name, "staging", token, recursive=True)
    return removed
