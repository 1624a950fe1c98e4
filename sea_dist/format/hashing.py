"""The sha256 digests sea-dist records: of bytes, of one file, of a list of files.

Every digest on disk (artifact and manifest sha256, fit seals, model revisions) is a hex sha256
computed here, so a revision computed by the scheduler equals the one a loaded model reports.
Only the standard library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

HASH_CHUNK = 1 << 20
"""Bytes read at a time when hashing a file (files may be gigabytes of weights)."""


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of the bytes of ``path``, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_files(paths: Iterable[Path]) -> str:
    """Hex sha256 over several files: for each, in order, its name, a NUL byte, its bytes.

    This is a model's revision (``sha256:`` + the first 16 hex digits) for a local folder of
    safetensors weights or a GGUF file; the name is hashed so that renaming a shard changes it.
    """
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()
