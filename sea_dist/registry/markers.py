"""Completion markers and manifest digests: what makes a version visible and what anchors it.

A version ``v`` of ``name`` is visible only once ``<name>/complete/<v>.json`` holds a valid
marker, written last by the publisher::

    {"version": v, "sha256": "<hex sha256 of projections.safetensors>",
     "manifest_sha256": "<hex sha256 of manifest.json>",
     "summary_sha256": "<hex sha256 of the version's listing-index row>", "completed_at": "..."}

The marker is the trust anchor of a registry version: ``sha256`` pins the tensors and
``manifest_sha256`` pins every manifest field (site, combine, model id, feature map...), which
no tensor shape can check. ``summary_sha256`` pins the row that the listing index
(:mod:`sea_dist.registry.index`) holds for the version, so a row of ``index.parquet`` is shown
only when it is what the publisher derived from the manifest. Markers written before
``manifest_sha256`` (or ``summary_sha256``) existed lack it; their manifests are then checked
through the tensors' sha256 only (and their index rows against the manifest itself). An empty or
unparseable marker (a publisher that died while writing it) is *not* a marker: the version stays
invisible.

``registry gc`` takes a version out of view by moving its marker to ``<name>/retired/<v>.json``
before removing anything (see :mod:`sea_dist.registry.retention`); only ``complete/`` counts.

A downloaded copy has no registry around it, so the download writes ``manifest.sha256`` next to
``manifest.json``: one line in the ``sha256sum`` format (``<hex>  manifest.json``, so
``sha256sum -c manifest.sha256`` checks it too). :func:`sea_dist.registry.load_artifact` verifies
it when present. It guards against accidental edits, not forgery: whoever can rewrite the
manifest can rewrite that file too; only the registry's marker is an anchor.

The marker and digest-file records (parse, write, check) are :mod:`sea_dist.format.anchors`;
this module reads and lists them through the storage layer.
"""

from __future__ import annotations

from typing import Any

from sea_dist.format.anchors import COMPLETE_DIR, Marker, parse_marker
from sea_dist.registry.storage import Storage

RETIRED_DIR = "retired"


MarkerCache = dict[tuple[str, int], tuple[tuple[Any, ...], Marker]]
"""Valid markers by ``(name, version)``, each with its file's signature when it was read."""


def _version_of(entry: str) -> int | None:
    stem = entry.removesuffix(".json")
    return int(stem) if stem != entry and stem.isdigit() else None


def read_marker(storage: Storage, name: str, version: int) -> Marker | None:
    """The valid marker of ``name@version``, or None (missing, empty or damaged)."""
    try:
        raw = storage.read_bytes(name, COMPLETE_DIR, f"{version}.json")
    except FileNotFoundError:
        return None
    return parse_marker(raw, version)


def complete_markers(
    storage: Storage, name: str, cache: MarkerCache | None = None
) -> dict[int, Marker]:
    """The valid markers of ``name`` by version, ascending.

    Args:
        storage: the registry storage.
        name: artifact name.
        cache: what earlier calls validated (updated in place). A marker is created once, whole,
            and never rewritten (only moved away by gc; numbers are never reused), so only
            markers that are new or were replaced are read (concurrently on object stores):
            listing a thousand versions stays one directory listing. Resolving and loading
            always read the marker itself.
    """
    cache = {} if cache is None else cache
    listed = {
        version: signature
        for entry, signature in storage.list_signatures(name, COMPLETE_DIR).items()
        if (version := _version_of(entry)) is not None
    }
    misses = [
        v for v, signature in listed.items() if (cache.get((name, v)) or ((),))[0] != signature
    ]
    paths = [(name, COMPLETE_DIR, f"{v}.json") for v in misses]
    contents = storage.read_many(paths)
    for version, path in zip(misses, paths):
        marker = parse_marker(contents[path], version)
        if marker is None:  # empty or damaged: re-read each time
            cache.pop((name, version), None)
        else:
            cache[(name, version)] = (listed[version], marker)
    for key in [k for k in cache if k[0] == name and k[1] not in listed]:
        del cache[key]  # removed by gc
    return {v: cache[(name, v)][1] for v in sorted(listed) if (name, v) in cache}


def complete_versions(storage: Storage, name: str, cache: MarkerCache | None = None) -> list[int]:
    """Versions of ``name`` with a valid marker, ascending (see :func:`complete_markers`)."""
    return list(complete_markers(storage, name, cache))


def latest_version(storage: Storage, name: str) -> int | None:
    """The highest version of ``name`` with a valid marker (reads newest first, stops there)."""
    entries = storage.list_dir(name, COMPLETE_DIR)
    listed = sorted(v for v in map(_version_of, entries) if v is not None)
    for version in reversed(listed):
        if read_marker(storage, name, version) is not None:
            return version
    return None
