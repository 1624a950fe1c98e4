"""May a store be created (or replaced) at a location? Never by deleting what is not a store.

Creating a Zarr group with ``mode="w"`` deletes everything below its path first. Before that
happens, :func:`check_store_target` looks at what is there:

- nothing, or an empty folder: a store may be created;
- a sea-dist activation store: it may be resumed (same identity) or, with ``--overwrite``,
  replaced, but only if the folder holds nothing besides the store's own Zarr nodes;
- anything else (a file, a folder of other files, a Zarr node that is not a sea-dist store):
  refused, with or without ``--overwrite``; nothing is deleted.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from sea_dist.errors import StoreError, excerpt

ZARR_METADATA = "zarr.json"
STORE_ATTRIBUTE = "schema_version"
"""Every sea-dist store records its schema version in the group attributes."""


def _refuse(url: str, found: str, fix: str) -> StoreError:
    return StoreError(
        f"store {excerpt(url)}: expected an empty folder or a sea-dist activation store, "
        f"found {found}; nothing was deleted; {fix}"
    )


def fresh_fs(url: str) -> tuple[Any, str]:
    """The fsspec file system and path of ``url``, without listings cached by this process.

    fsspec reuses one file system instance per URL kind, and object-storage ones (s3fs, gcsfs)
    cache directory listings in it: a long-lived process would otherwise judge a location by
    what it listed earlier, not by what other processes (collectors, a user) have changed since.
    """
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    return fs, path


def _entries(fs: Any, path: str) -> list[str]:
    return sorted(posixpath.basename(str(p).rstrip("/")) for p in fs.ls(path, detail=False))


def check_store_target(url: str, overwrite: bool) -> None:
    """Refuse a location where creating a store would delete data that is not a store.

    Args:
        url: the store's folder or fsspec URL.
        overwrite: the caller means to replace an existing store (``--overwrite``).

    Raises:
        StoreError: ``url`` is a file, a non-empty folder that is not a sea-dist store, or (with
            ``overwrite``) a store folder that also holds other entries.
    """
    try:
        fs, path = fresh_fs(url)
        if not fs.exists(path):
            return
        if not fs.isdir(path):
            raise _refuse(url, "a file", "choose another store URL (--store or store.url)")
        names = _entries(fs, path)
    except OSError as error:
        raise StoreError(
            f"store {excerpt(url)}: expected a readable location, found "
            f"{type(error).__name__}: {error.strerror or error}; check the URL and permissions"
        ) from None
    if not names:
        return
    shown = excerpt(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    if ZARR_METADATA not in names:
        raise _refuse(
            url,
            f"a folder that is not a store, holding {len(names)} entries {shown}",
            "choose another store URL (--store or store.url) or an empty folder",
        )
    try:
        metadata = json.loads(fs.cat_file(posixpath.join(path, ZARR_METADATA)))
        attributes = metadata.get("attributes") or {}
        is_store = metadata.get("node_type") == "group" and STORE_ATTRIBUTE in attributes
    except (ValueError, AttributeError, OSError):
        if not overwrite:
            raise StoreError(
                f"store {excerpt(url)}: expected a readable {ZARR_METADATA}, found a damaged "
                "one; restore it, or pass --overwrite to replace the store"
            ) from None
        # A damaged store may be replaced if everything in it is a Zarr node (checked below).
        is_store = True
    if not is_store:
        raise _refuse(
            url,
            "a Zarr node that is not a sea-dist activation store",
            "choose another store URL (--store or store.url)",
        )
    if overwrite:
        foreign = [
            name
            for name in names
            if name != ZARR_METADATA and not fs.exists(posixpath.join(path, name, ZARR_METADATA))
        ]
        if foreign:
            raise _refuse(
                url,
                f"a store that also holds {len(foreign)} other entries {excerpt(foreign[:5])}, "
                "which --overwrite would delete",
                "move them out of the store folder first",
            )
