"""fit.json seals: the projections' sha256 and the record's own, checked by every reader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load

from sea_dist.edit import load_edit
from sea_dist.errors import ArtifactError
from sea_dist.fit import FitResult
from sea_dist.format.seal import (
    PROJECTIONS_SEAL,
    RECORD_SEAL,
    check_seal,
    is_sealed,
    record_digest,
    seal,
)
from sea_dist.format.tensor_file import tensor_file_bytes
from sea_dist.registry.fitdir import read_fit_output


def test_seal_round_trip_and_tamper() -> None:
    record = {"layers": [{"layer": 1, "energy_pos": 0.99123}], "schema_version": 1}
    sealed = seal(record, b"tensor bytes")
    assert is_sealed(sealed) and not is_sealed(record)
    assert sealed[RECORD_SEAL] == record_digest(sealed)
    check_seal(sealed, b"tensor bytes", "fit")
    assert seal(sealed, b"tensor bytes") == sealed  # sealing again changes nothing
    with pytest.raises(ArtifactError, match="projections.safetensors: expected sha256"):
        check_seal(sealed, b"tensor bytez", "fit")
    changed = json.loads(json.dumps(sealed).replace("0.99123", "0.99923"))
    with pytest.raises(ArtifactError, match="fit.json: expected content with sha256"):
        check_seal(changed, b"tensor bytes", "fit")
    only_one = {k: v for k, v in sealed.items() if k != RECORD_SEAL}
    with pytest.raises(ArtifactError, match="fit.json"):
        check_seal(only_one, b"tensor bytes", "fit")
    check_seal(record, b"anything", "fit")  # written before seals: read unchecked


def _fit_folder(tmp_path: Path) -> Path:
    """A synthetic fit output, sealed as ``FitResult.save`` seals one."""
    from synthetic_fit import write_synthetic_fit

    folder = write_synthetic_fit(tmp_path / "fit")
    record = json.loads((folder / "fit.json").read_text())
    sealed = seal(record, (folder / "projections.safetensors").read_bytes())
    (folder / "fit.json").write_text(json.dumps(sealed, indent=2))
    return folder


def _flip_mantissa(path: Path) -> None:
    """Flip the lowest bit of the last float32 of the file: still finite, still ~orthonormal."""
    data = bytearray(path.read_bytes())
    data[-4] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("reader", ["publish", "load_edit", "FitResult.load"])
@pytest.mark.parametrize("damage", ["projection-bit", "energy-digit"])
def test_every_reader_refuses_a_damaged_fit_output(
    reader: str, damage: str, tmp_path: Path
) -> None:
    folder = _fit_folder(tmp_path)
    if damage == "projection-bit":
        _flip_mantissa(folder / "projections.safetensors")
    else:
        text = (folder / "fit.json").read_text()
        record = json.loads(text)
        energy = record["layers"][0]["energy_pos"]
        changed = dict(record, layers=[dict(record["layers"][0], energy_pos=energy * 0.999)])
        (folder / "fit.json").write_text(json.dumps(changed, indent=2))
    read = {
        "publish": lambda: read_fit_output(str(folder)),
        "load_edit": lambda: load_edit(folder),
        "FitResult.load": lambda: FitResult.load(folder),
    }[reader]
    with pytest.raises(ArtifactError, match="damaged after it was written"):
        read()


def test_an_unsealed_fit_output_still_publishes(tmp_path: Path) -> None:
    folder = _fit_folder(tmp_path)
    record = json.loads((folder / "fit.json").read_text())
    old = {k: v for k, v in record.items() if k not in (PROJECTIONS_SEAL, RECORD_SEAL)}
    (folder / "fit.json").write_text(json.dumps(old))
    assert read_fit_output(str(folder)).fit == old


WRITE = """
import hashlib, sys
import numpy as np
from sea_dist.format.tensor_file import tensor_file_bytes
rng = np.random.default_rng(0)
tensors = {f"layers.{i}.U_pos": rng.standard_normal((8, 3)).astype("float32") for i in range(3)}
data = tensor_file_bytes(tensors, {"format": "sea-dist-fit", "schema_version": "1", "z": "q"})
print(hashlib.sha256(data).hexdigest())
"""


def test_tensor_files_are_the_same_bytes_in_every_process() -> None:
    """safetensors orders metadata by a per-process hash; the written bytes must not vary."""
    digests = {
        subprocess.run(
            [sys.executable, "-c", WRITE], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(4)
    }
    assert len(digests) == 1, digests


def test_tensor_file_bytes_load_back() -> None:
    tensors: dict[str, np.ndarray] = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.ones(4),
    }
    data = tensor_file_bytes(tensors, {"format": "x", "schema_version": "1"})
    loaded = load(data)
    assert all(np.array_equal(loaded[k], v) for k, v in tensors.items())
