"""Safetensors checks: valid files decode; pickle, zip, truncated, malformed files are refused."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from sea_dist.errors import ArtifactError
from sea_dist.format.tensors import check_tensor_names, decode, encode, parse_header, sha256_hex


def _sample() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "layers.2.U_pos": rng.standard_normal((8, 3)).astype(np.float32),
        "layers.2.S_pos": np.arange(5, dtype=np.float64),
    }


def test_roundtrip_and_header() -> None:
    tensors = _sample()
    data = encode(tensors)
    header = parse_header(data, "x")
    assert header["layers.2.U_pos"].shape == (8, 3)
    assert header["layers.2.U_pos"].dtype == "F32"
    assert header["layers.2.S_pos"].dtype == "F64"
    decoded = decode(data, "x")
    for name, value in tensors.items():
        np.testing.assert_array_equal(decoded[name], value)
    assert sha256_hex(data) == sha256_hex(bytes(data))
    assert len(sha256_hex(data)) == 64


def test_pickle_is_refused_without_unpickling() -> None:
    payload = pickle.dumps({"layers.0.U_pos": np.zeros((2, 2))}, protocol=4)
    with pytest.raises(ArtifactError, match="pickle"):
        parse_header(payload, "evil.safetensors")


def _padded_to_header_length(target: int) -> bytes:
    """``_sample()`` encoded with metadata padding so the header is exactly ``target`` bytes."""
    for pad in range(4096):
        data = encode(_sample(), metadata={"pad": "x" * pad})
        if int.from_bytes(data[:8], "little") == target:
            return data
    raise AssertionError(f"no padding gives a header of {target} bytes")


@pytest.mark.parametrize("header_length", [0x180, 0x280, 0x380, 0x480, 0x580])
def test_valid_file_whose_first_byte_is_0x80_is_not_a_pickle(header_length: int) -> None:
    # The first byte is the low byte of the header length: 0x80 here, a pickle's PROTO opcode,
    # and the second (0x02..0x05 for 0x280..0x580) looks like a protocol number.
    data = _padded_to_header_length(header_length)
    assert data[0] == 0x80 and header_length % 256 == 0x80
    assert parse_header(data, "x")["layers.2.U_pos"].shape == (8, 3)
    np.testing.assert_array_equal(decode(data, "x")["layers.2.S_pos"], _sample()["layers.2.S_pos"])


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickles_of_every_protocol_are_refused_as_pickles(protocol: int) -> None:
    payload = pickle.dumps({"layers.0.U_pos": np.zeros((2, 2))}, protocol=protocol)
    with pytest.raises(ArtifactError, match="pickle"):
        decode(payload, "evil.safetensors")


def test_truncated_file_starting_with_0x80_is_reported_truncated() -> None:
    data = _padded_to_header_length(0x380)
    with pytest.raises(ArtifactError, match="truncated"):
        parse_header(data[:100], "x")


def test_torch_save_zip_is_refused() -> None:
    import torch

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    with pytest.raises(ArtifactError, match="zip archive"):
        decode(buffer.getvalue(), "evil.pt")


@pytest.mark.parametrize("cut", [4, 20, -1])
def test_truncated_file_is_refused(cut: int) -> None:
    data = encode(_sample())
    with pytest.raises(ArtifactError, match="truncated"):
        parse_header(data[:cut], "x")


def test_padded_file_is_refused() -> None:
    with pytest.raises(ArtifactError, match="truncated or padded"):
        parse_header(encode(_sample()) + b"\0\0\0\0", "x")


def test_absurd_header_length_is_refused() -> None:
    with pytest.raises(ArtifactError, match="header length"):
        parse_header((2**40).to_bytes(8, "little") + b"{}", "x")


def test_non_json_header_is_refused() -> None:
    body = b"not json"
    with pytest.raises(ArtifactError, match="JSON"):
        parse_header(len(body).to_bytes(8, "little") + body, "x")


def _with_header(header: bytes, body: bytes) -> bytes:
    return len(header).to_bytes(8, "little") + header + body


def test_unknown_dtype_and_bad_offsets_are_refused() -> None:
    bad_dtype = b'{"t": {"dtype": "O", "shape": [1], "data_offsets": [0, 8]}}'
    with pytest.raises(ArtifactError, match="dtype"):
        parse_header(_with_header(bad_dtype, b"\0" * 8), "x")
    bad_offsets = b'{"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}'
    with pytest.raises(ArtifactError, match="offsets"):
        parse_header(_with_header(bad_offsets, b"\0" * 8), "x")
    overlap = (
        b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},'
        b' "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}'
    )
    with pytest.raises(ArtifactError, match="gap or overlap"):
        parse_header(_with_header(overlap, b"\0" * 12), "x")


def test_unknown_tensor_names_are_refused() -> None:
    header = parse_header(encode({"weights": np.zeros(2, dtype=np.float32)}), "x")
    with pytest.raises(ArtifactError, match="tensor names"):
        check_tensor_names(header, "x")
    check_tensor_names(parse_header(encode(_sample()), "x"), "x")
