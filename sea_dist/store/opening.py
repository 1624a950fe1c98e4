"""Opening a store's Zarr group, with a clear refusal for each way it can be missing or damaged."""

from __future__ import annotations

import posixpath

import zarr

from sea_dist.errors import StoreError, excerpt
from sea_dist.store.target import fresh_fs


def open_group(url: str, mode: str = "r") -> zarr.Group:
    """Open the store's Zarr group, refusing nothing there or a damaged ``zarr.json`` clearly."""
    try:
        return zarr.open_group(url, mode=mode)  # type: ignore[arg-type]
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        entries = _folder_entries(url)
        if entries:
            raise StoreError(
                f"store: expected a sea-dist activation store at {url!r}, found a folder "
                f"without zarr.json holding {len(entries)} entries {excerpt(entries[:5])}; "
                "restore its zarr.json if it was a store, else give the store's URL"
            ) from None
        raise StoreError(
            f"store: expected a sea-dist activation store at {url!r}, found nothing; "
            "run 'sea-dist collect' first"
        ) from None
    except OSError as error:
        raise StoreError(
            f"store {excerpt(url)}: expected a readable location, found "
            f"{type(error).__name__}: {error.strerror or error}; check the URL and permissions"
        ) from None
    except Exception as error:  # noqa: BLE001 - JSON, Unicode and zarr metadata errors alike
        raise StoreError(
            f"store {excerpt(url)}: expected a readable zarr.json, found a damaged one "
            f"({type(error).__name__}: {excerpt(str(error), 80)}); restore it, or re-collect "
            "with --overwrite"
        ) from None


def _folder_entries(url: str) -> list[str]:
    """Names in the folder at ``url`` (empty when it is no folder or cannot be listed)."""
    try:
        fs, path = fresh_fs(url)
        if not fs.isdir(path):
            return []
        return sorted(posixpath.basename(str(p).rstrip("/")) for p in fs.ls(path, detail=False))
    except (OSError, ValueError):
        return []
