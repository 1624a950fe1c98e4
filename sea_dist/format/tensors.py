"""Safetensors reading and writing with strict checks, and content hashing. No pickle, ever.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON describing each
tensor (dtype, shape, byte offsets) and then the raw data. Before the bytes reach any decoder the
header is checked here: a pickle or ``torch.save`` zip is refused by its magic bytes (only when
the bytes are not a safetensors header: a valid file may start with 0x80, the low byte of its
header length), a truncated file by its offsets, so the error names the real problem instead of
a checksum mismatch.

Only numpy and safetensors are imported here (the loader must work in a serving image).
:mod:`sea_dist.format.tensor_file` writes the reproducible bytes; this module reads them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import safetensors.numpy

from sea_dist.errors import ArtifactError, expected_found
from sea_dist.format.hashing import sha256_hex as sha256_hex  # re-exported: readers hash here

MAX_HEADER_BYTES = 100 * 2**20
_ITEM_SIZES = {"F64": 8, "F32": 4, "F16": 2, "I64": 8, "I32": 4}
TENSOR_NAME_RE = re.compile(r"^layers\.(0|[1-9][0-9]*)\.(U_pos|U_neg|S_pos|S_neg|mean)$")


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a safetensors header."""

    dtype: str
    shape: tuple[int, ...]


def _looks_like_safetensors(data: bytes) -> bool:
    """A plausible 8-byte little-endian header length, then a JSON object header at byte 8.

    The length need not fit the data: a truncated safetensors file is reported as truncated
    by :func:`parse_header`, not as a pickle.
    """
    header_len = int.from_bytes(data[:8], "little")
    return len(data) > 8 and 2 <= header_len <= MAX_HEADER_BYTES and data[8:9] == b"{"


def _refuse_pickle(data: bytes, what: str) -> None:
    # The first byte of a safetensors file is the low byte of its header length, so it can be
    # 0x80 (a pickle's PROTO opcode) in a valid file: sniff for pickle/zip only when the bytes
    # are not a plausible safetensors header.
    if _looks_like_safetensors(data):
        return
    if data[:1] == b"\x80":
        raise ArtifactError(
            f"{what}: expected a safetensors file, found a Python pickle; refusing to load it "
            "(sea-dist never unpickles); re-export the projections with safetensors"
        )
    if data[:4] == b"PK\x03\x04":
        raise ArtifactError(
            f"{what}: expected a safetensors file, found a zip archive (torch.save/pickle); "
            "refusing to load it; re-export the projections with safetensors"
        )


def parse_header(data: bytes, what: str) -> dict[str, TensorInfo]:
    """Validate the safetensors layout of ``data`` and return its tensors by name.

    Args:
        data: the complete file content.
        what: where the bytes came from, for error messages.

    Raises:
        ArtifactError: pickle/zip content, bad header, unknown dtype, or a truncated/padded body.
    """
    _refuse_pickle(data, what)
    if len(data) < 8:
        raise ArtifactError(
            expected_found(
                what,
                "a safetensors file",
                f"{len(data)} bytes",
                "the file is truncated; download it again",
            )
        )
    header_len = int.from_bytes(data[:8], "little")
    if header_len > MAX_HEADER_BYTES or header_len < 2:
        raise ArtifactError(
            expected_found(
                what,
                "a safetensors header length below 100 MiB",
                header_len,
                "the file is not safetensors",
            )
        )
    if 8 + header_len > len(data):
        raise ArtifactError(
            expected_found(
                what,
                f"at least {8 + header_len} bytes",
                len(data),
                "the file is truncated; download it again",
            )
        )
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactError(
            expected_found(
                what,
                "a JSON safetensors header",
                "undecodable bytes",
                "the file is not safetensors",
            )
        ) from None
    if not isinstance(header, dict):
        raise ArtifactError(expected_found(what, "a JSON object header", type(header).__name__))
    body = len(data) - 8 - header_len
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int]] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or info.get("dtype") not in _ITEM_SIZES:
            raise ArtifactError(
                expected_found(f"{what}: tensor {name}", f"dtype in {sorted(_ITEM_SIZES)}", info)
            )
        shape = info.get("shape")
        offsets = info.get("data_offsets")
        if (
            not isinstance(shape, list)
            or not all(isinstance(s, int) and s >= 0 for s in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
        ):
            raise ArtifactError(
                expected_found(f"{what}: tensor {name}", "a shape and two data offsets", info)
            )
        begin, end = offsets
        if end - begin != int(np.prod(shape, dtype=np.int64)) * _ITEM_SIZES[info["dtype"]]:
            raise ArtifactError(
                expected_found(f"{what}: tensor {name}", "data offsets matching its shape", offsets)
            )
        tensors[name] = TensorInfo(info["dtype"], tuple(shape))
        spans.append((begin, end))
    spans.sort()
    position = 0
    for begin, end in spans:
        if begin != position:
            raise ArtifactError(
                expected_found(what, "contiguous tensor data", f"a gap or overlap at byte {begin}")
            )
        position = end
    if position != body:
        raise ArtifactError(
            expected_found(
                what,
                f"{position} data bytes after the header",
                body,
                "the file is truncated or padded; download it again",
            )
        )
    return tensors


def check_tensor_names(tensors: Mapping[str, TensorInfo], what: str) -> None:
    """Refuse tensors other than ``layers.<L>.{U_pos,U_neg,S_pos,S_neg,mean}``."""
    unknown = sorted(n for n in tensors if not TENSOR_NAME_RE.fullmatch(n))
    if unknown:
        raise ArtifactError(
            expected_found(
                f"{what}: tensor names", "layers.<L>.{U_pos,U_neg,S_pos,S_neg,mean}", unknown[:5]
            )
        )


def decode(data: bytes, what: str) -> dict[str, np.ndarray]:
    """Validate ``data`` (see :func:`parse_header`) and decode every tensor to numpy."""
    parse_header(data, what)
    try:
        return dict(safetensors.numpy.load(data))
    except Exception as error:  # the Rust decoder raises its own error types
        raise ArtifactError(
            expected_found(what, "a decodable safetensors file", str(error).splitlines()[0])
        ) from None


def encode(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialise numpy arrays to safetensors bytes (C-contiguous copies where needed)."""
    arrays = {name: np.ascontiguousarray(value) for name, value in tensors.items()}
    return bytes(safetensors.numpy.save(arrays, metadata=dict(metadata) if metadata else None))
