"""What is wrong with a registry name, said with the command that fixes it.

Every fix named here is one that works (the reliability suite runs each): a damaged version is
retired with ``registry gc --damaged`` (after the aliases that point to it are moved, since gc
never orphans an alias); an alias left pointing to a removed version is moved with
``registry alias``; a forged or stale index row is rewritten by ``registry reindex``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from sea_dist.errors import expected_found
from sea_dist.registry import aliases as alias_ops
from sea_dist.registry.markers import latest_version
from sea_dist.registry.storage import Storage

if TYPE_CHECKING:  # the index needs pyarrow; a serving image loads artifacts without it
    from sea_dist.registry.index import Listing

log = logging.getLogger(__name__)


def damage_fix(storage: Storage, name: str, version: int) -> str:
    """How to make a damaged ``name@version`` stop failing listings and loads."""
    holders = sorted(a for a, v in alias_ops.read_aliases(storage, name).items() if v == version)
    retire = f"'sea-dist registry gc --damaged --name {name}'"
    again = "(publish the fit output again as a new version if it is still needed)"
    if not holders:
        return f"restore the files from a copy, or retire the version with {retire} {again}"
    moves = ", ".join(f"'sea-dist registry alias {name}@N {a}'" for a in holders)
    return (
        f"restore the files from a copy, or move the aliases that point to it ({moves}, "
        f"N a published version), then run {retire} {again}"
    )


def dangling_alias(storage: Storage, name: str, alias: str, version: int) -> str:
    """The one-line message for an alias that points to a version that is not published."""
    latest = latest_version(storage, name)
    target = f"{name}@{latest}" if latest is not None else f"{name}@N (publish one first)"
    return expected_found(
        f"alias {name}@{alias}",
        "a pointer to a published version",
        f"{name}@{version}, which is not published (removed or unfinished)",
        f"point it at a published version: 'sea-dist registry alias {target} {alias}' "
        "(a gated alias needs a version that passes the gate, or --force --reason TEXT)",
    )


def warn_damaged(storage: Storage, name: str, damaged: Mapping[int, str]) -> None:
    """Log one warning per damaged version, with its fix."""
    for version, why in sorted(damaged.items()):
        log.warning(
            "%s@%d is damaged and not listed (%s); %s",
            name,
            version,
            why,
            damage_fix(storage, name, version),
        )


def warn_listing(
    storage: Storage,
    name: str,
    listing: Listing,
    aliases: Mapping[str, int],
    complete: Collection[int],
) -> None:
    """Log what a listing found wrong: damaged versions, replaced index rows, dangling aliases."""
    from sea_dist.registry.index import INDEX_FILE  # pyarrow, an optional dependency

    warn_damaged(storage, name, listing.damaged)
    if listing.replaced:
        log.warning(
            "%s: the index rows of versions %s did not match their manifests (shown from the "
            "manifests); run 'sea-dist registry reindex %s' to rewrite the index",
            storage.display(name, INDEX_FILE),
            ", ".join(map(str, listing.replaced)),
            name,
        )
    for alias, version in sorted(aliases.items()):
        if version not in complete:
            log.warning("%s", dangling_alias(storage, name, alias, version))
