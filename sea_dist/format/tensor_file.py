"""Safetensors bytes that depend only on the tensors and metadata, not on the writing process.

``safetensors`` keeps the ``__metadata__`` map in a hash map whose order changes from process
to process, so two fits of the same store wrote different bytes (and so different artifact
sha256s) for equal tensors. Here the header's metadata is rewritten with sorted keys, padded to
the same length, so equal inputs give equal bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

import numpy as np
from safetensors.numpy import save

_LENGTH = struct.Struct("<Q")


def tensor_file_bytes(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The safetensors file of ``tensors`` with ``metadata``, byte-for-byte reproducible."""
    raw = save(dict(tensors), metadata=dict(metadata))
    (length,) = _LENGTH.unpack_from(raw)
    header = json.loads(raw[8 : 8 + length])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    if len(text) > length:  # cannot happen (same content, reordered); refuse rather than corrupt
        raise ValueError(f"canonical safetensors header of {len(text)} bytes exceeds {length}")
    # Spaces pad the header to its original length, as safetensors itself pads for alignment.
    return raw[:8] + text.ljust(length, b" ") + raw[8 + length :]
