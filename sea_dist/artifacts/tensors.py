"""Moved to :mod:`sea_dist.format.tensors` (safetensors layout checks, no pickle); re-exported."""

from sea_dist.format.tensors import (
    MAX_HEADER_BYTES,
    TENSOR_NAME_RE,
    TensorInfo,
    check_tensor_names,
    decode,
    encode,
    parse_header,
    sha256_hex,
)

__all__ = [
    "MAX_HEADER_BYTES",
    "TENSOR_NAME_RE",
    "TensorInfo",
    "check_tensor_names",
    "decode",
    "encode",
    "parse_header",
    "sha256_hex",
]
