"""Before/after snapshots of folders: every file's sha256, every folder and link, by relative path.

A refused input must leave stores, fit outputs and the registry exactly as they were; comparing
two snapshots proves it (a new empty folder, a stray temp file or one flipped byte all show up).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

Snapshot = dict[str, str]


def tree_digest(root: Path) -> Snapshot:
    """``relative path -> "dir" | "link:<target>" | sha256`` for everything below ``root``."""
    result: Snapshot = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in dirs:
            path = base / name
            key = str(path.relative_to(root))
            result[key] = f"link:{os.readlink(path)}" if path.is_symlink() else "dir"
        for name in files:
            path = base / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                result[key] = f"link:{os.readlink(path)}"
            else:
                result[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable differences (``+ added``, ``- removed``, ``~ modified``), sorted."""
    added = [f"+ {k}" for k in after.keys() - before.keys()]
    removed = [f"- {k}" for k in before.keys() - after.keys()]
    modified = [f"~ {k}" for k in before.keys() & after.keys() if before[k] != after[k]]
    return sorted(added + removed + modified)
