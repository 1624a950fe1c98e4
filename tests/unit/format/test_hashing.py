"""The one file digest: model revisions computed by the scheduler equal those models report."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sea_dist.format.hashing import HASH_CHUNK, sha256_file, sha256_files, sha256_hex


def test_sha256_files_hashes_names_and_bytes_in_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"first")
    b.write_bytes(b"x" * (HASH_CHUNK + 7))  # spans a chunk boundary
    expected = hashlib.sha256(
        b"a.safetensors\0first" + b"b.safetensors\0" + b"x" * (HASH_CHUNK + 7)
    ).hexdigest()
    assert sha256_files([a, b]) == expected
    assert sha256_files([b, a]) != expected  # order matters
    renamed = tmp_path / "c.safetensors"
    renamed.write_bytes(b"first")
    assert sha256_files([renamed, b]) != expected  # the name is part of the digest


def test_single_file_and_bytes_digests_agree(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"\x00\x01" * 1000)
    assert sha256_file(path) == sha256_hex(path.read_bytes())
    assert sha256_hex(b"") == hashlib.sha256(b"").hexdigest()
