"""Aliases: movable names for versions (``production``, ``staging``...), with a kept history.

Layout below ``<root>/<name>/aliases/``:

- ``current/<alias>.json``: ``{"alias", "version", "previous", "moved_at", "id", "gated",
  "gate", "forced", "reason"}``; replaced atomically (temp file + ``os.replace`` locally, one PUT
  on object stores), so a reader sees the old target or the new one. ``gated`` says the move went
  through the promotion gate (:mod:`sea_dist.registry.gate`), ``gate`` its verdict
  ``{"passed", "reasons"}`` (null for an ungated move), ``forced`` that a failing verdict was
  overridden and ``reason`` why. Records written before these keys lack them.
- ``history/<alias>/<UTC timestamp>-<id>.json``: one new object per move, never rewritten, so
  two concurrent movers cannot lose each other's history entry (the current pointer is
  last-writer-wins).

``latest`` is implicit (the highest complete version) and cannot be set.

A move races with ``registry gc`` removing the target: :func:`move_alias` writes the pointer,
then checks that the target's completion marker is still there (gc retires a marker before it
re-reads the aliases; see :mod:`sea_dist.registry.retention`). While the marker is retired it
waits for gc's decision; when the version is gone it puts the previous pointer back (recording
the revert in the history) and raises ``NotFoundError``. An alias therefore never keeps pointing
to a version gc removed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

from sea_dist.errors import RegistryError, expected_found
from sea_dist.format.anchors import COMPLETE_DIR
from sea_dist.registry.markers import RETIRED_DIR
from sea_dist.registry.refs import NotFoundError, check_alias
from sea_dist.registry.storage import Storage

RETIRED_WAIT_S = 30.0
"""How long a move waits for a gc that has retired its target to keep or remove it."""
_POLL_S = 0.02


def read_aliases(storage: Storage, name: str) -> dict[str, int]:
    """All user aliases of ``name`` and the version each points to."""
    files = [f for f in storage.list_dir(name, "aliases", "current") if f.endswith(".json")]
    contents = storage.read_many([(name, "aliases", "current", f) for f in files])
    result = {}
    for parts, raw in contents.items():
        if raw is None:
            continue
        try:
            record = json.loads(raw)
            result[parts[-1].removesuffix(".json")] = int(record["version"])
        except (ValueError, KeyError, TypeError):
            continue  # a half-written foreign file is not an alias
    return dict(sorted(result.items()))


def read_alias(storage: Storage, name: str, alias: str) -> int | None:
    """Version ``alias`` points to, or None when the alias does not exist."""
    check_alias(alias)
    try:
        raw = storage.read_bytes(name, "aliases", "current", f"{alias}.json")
    except FileNotFoundError:
        return None
    try:
        return int(json.loads(raw)["version"])
    except (ValueError, KeyError, TypeError):
        raise RegistryError(
            expected_found(
                f"alias {name}@{alias}",
                "a JSON pointer to a version",
                raw[:80],
                "move the alias again",
            )
        ) from None


def read_alias_record(storage: Storage, name: str, alias: str) -> dict[str, Any] | None:
    """The current pointer record of ``alias`` (see the module doc), or None when it does not
    exist.

    Raises:
        RegistryError: the pointer is not a JSON record of a version.
    """
    version = read_alias(storage, name, alias)
    if version is None:
        return None
    try:
        record = json.loads(storage.read_bytes(name, "aliases", "current", f"{alias}.json"))
    except (FileNotFoundError, ValueError):  # moved or removed between the two reads
        return {"alias": alias, "version": version}
    return record if isinstance(record, dict) else {"alias": alias, "version": version}


def move_alias(
    storage: Storage,
    name: str,
    alias: str,
    version: int,
    *,
    gated: bool = False,
    gate: dict[str, Any] | None = None,
    forced: bool = False,
    reason: str | None = None,
    previous: int | None = None,
) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (which the caller has checked exists); record the move.

    Args:
        storage: registry storage.
        name: artifact name.
        alias: the alias moved.
        version: its new target.
        gated: the move went through the promotion gate.
        gate: the gate's verdict ``{"passed": bool, "reasons": [...]}`` (None: ungated).
        forced: a failing verdict was overridden.
        reason: why (required by the gate for a forced move).
        previous: the target the caller saw before the move (default: read now).

    Returns:
        The history record written.
    """
    check_alias(alias)
    try:
        before = storage.read_bytes(name, "aliases", "current", f"{alias}.json")
    except FileNotFoundError:
        before = None
    now = dt.datetime.now(dt.UTC)
    record: dict[str, Any] = {
        "name": name,
        "alias": alias,
        "version": version,
        "previous": previous if previous is not None else read_alias(storage, name, alias),
        "moved_at": now.isoformat(timespec="microseconds"),
        "id": uuid.uuid4().hex,
        "gated": gated,
        "gate": gate,
        "forced": forced,
        "reason": reason,
    }
    raw = (json.dumps(record, indent=2) + "\n").encode("utf-8")
    # History first: a crash between the two writes leaves a history entry for a move that
    # did not happen rather than a move without history.
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    storage.create_exclusive(raw, name, "aliases", "history", alias, f"{stamp}-{record['id']}.json")
    storage.write_bytes(raw, name, "aliases", "current", f"{alias}.json")
    if not _target_survives(storage, name, version):
        _revert(storage, name, alias, record, before)
        raise NotFoundError(
            expected_found(
                f"alias {name}@{alias}",
                f"{name}@{version} to stay published",
                f"{name}@{version} removed by a concurrent 'registry gc'",
                f"the alias is left as it was ({_was(name, record, before)}); choose a "
                f"published version (see 'sea-dist registry versions {name}')",
            )
        )
    return record


def _was(name: str, record: dict[str, Any], before: bytes | None) -> str:
    previous = record["previous"]
    return f"{name}@{previous}" if before is not None and previous is not None else "unset"


def _target_survives(storage: Storage, name: str, version: int) -> bool:
    """Whether ``name@version`` is still complete after the pointer was written (see module doc).

    A gc that retired the marker moves it back (an alias points to it now) or removes the
    version; wait for either, at most :data:`RETIRED_WAIT_S` (a gc killed midway leaves the
    marker retired: the move is then undone, and the next gc restores the marker).
    """
    marker = (name, COMPLETE_DIR, f"{version}.json")
    retired = (name, RETIRED_DIR, f"{version}.json")
    deadline = time.monotonic() + RETIRED_WAIT_S
    while True:
        if storage.exists(*marker):
            return True
        if not storage.exists(*retired):
            # Restoring moves the marker back before the retired copy goes: look once more.
            return storage.exists(*marker)
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)


def _revert(
    storage: Storage, name: str, alias: str, record: dict[str, Any], before: bytes | None
) -> None:
    """Put the pointer that ``record`` replaced back (unless another move replaced it since)."""
    try:
        current = json.loads(storage.read_bytes(name, "aliases", "current", f"{alias}.json"))
    except (FileNotFoundError, ValueError):
        current = None
    if not isinstance(current, dict) or current.get("id") != record["id"]:
        return  # someone moved it again meanwhile: theirs stands
    now = dt.datetime.now(dt.UTC)
    undo = {
        **record,
        "version": record["previous"],
        "previous": record["version"],
        "moved_at": now.isoformat(timespec="microseconds"),
        "id": uuid.uuid4().hex,
        "gate": None,
        "forced": False,
        "reason": f"reverted: {name}@{record['version']} was removed by 'registry gc'",
        "reverted": True,
    }
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    raw = (json.dumps(undo, indent=2) + "\n").encode("utf-8")
    storage.create_exclusive(raw, name, "aliases", "history", alias, f"{stamp}-{undo['id']}.json")
    if before is None:
        storage.remove(name, "aliases", "current", f"{alias}.json")
    else:
        storage.write_bytes(before, name, "aliases", "current", f"{alias}.json")


def alias_history(storage: Storage, name: str, alias: str) -> list[dict[str, Any]]:
    """Every recorded move of ``alias``, oldest first."""
    check_alias(alias)
    files = sorted(
        f for f in storage.list_dir(name, "aliases", "history", alias) if f.endswith(".json")
    )
    contents = storage.read_many([(name, "aliases", "history", alias, f) for f in files])
    history = []
    for parts in sorted(contents):
        raw = contents[parts]
        if raw is not None:
            try:
                history.append(json.loads(raw))
            except ValueError:
                continue
    return history
