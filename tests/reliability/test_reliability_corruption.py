"""Corrupted artifacts and fit outputs are refused on load, through every public loader.

A published version is damaged on disk (a flipped byte, a truncated or emptied file, an edited
manifest, a pickle or a ``torch.save`` zip planted in place of the safetensors, a deleted file)
and then loaded with ``load_artifact`` (folder and reference), ``Registry.load``,
``Registry.download``, ``load_edit`` (folder and reference) and the ``sea-dist registry
download`` command. Each must raise a SeaDistError with a one-line message (exit 2 for the
command), never return tensors, and never unpickle: the planted pickle would create a canary file
if it were loaded. The intact neighbour version must still load afterwards (nothing else lost).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_outcome import refusal_problems, run_cli
from reliability_workspace import tripwire_pickle
from synthetic_fit import write_synthetic_fit

from sea_dist.edit import load_edit
from sea_dist.errors import SeaDistError
from sea_dist.fit import FitResult
from sea_dist.format.tensors import decode, encode
from sea_dist.registry import load_artifact
from sea_dist.registry.filesystem import Registry

pytestmark = pytest.mark.fault

PROJECTIONS = "projections.safetensors"
MANIFEST = "manifest.json"


def _torch_zip() -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"layers.1.U_pos": torch.zeros(16, 3)}, buffer)
    return buffer.getvalue()


def _flip(path: Path, offset: int = -5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _set_k(data: dict[str, Any]) -> None:
    data["per_layer"][0]["k_pos"] = 1


def _set_site(data: dict[str, Any]) -> None:
    data["site"] = "mlp"


def _set_sha(folder: Path) -> None:
    """Tamper with the tensors and re-hash them into the manifest: a consistent forgery."""
    from sea_dist.format.tensors import sha256_hex

    arrays = decode((folder / PROJECTIONS).read_bytes(), "test")
    arrays = {name: np.zeros_like(value) for name, value in arrays.items()}
    forged = encode(arrays)
    (folder / PROJECTIONS).write_bytes(forged)

    def change(data: dict[str, Any]) -> None:
        data["sha256"] = sha256_hex(forged)
        data["size_bytes"] = len(forged)
        data["files"][PROJECTIONS] = {"sha256": data["sha256"], "size_bytes": len(forged)}

    _edit_json(folder / MANIFEST, change)


NOT_APPLICABLE = "n/a"

# name -> (damage(version folder, canary), {loader: bug that fails it, or NOT_APPLICABLE})
CORRUPTIONS: dict[str, tuple[Callable[[Path, Path], object], dict[str, str]]] = {
    "flipped-byte-data": (lambda v, c: _flip(v / PROJECTIONS), {}),
    "flipped-byte-header": (lambda v, c: _flip(v / PROJECTIONS, 20), {}),
    "truncated": (
        lambda v, c: (v / PROJECTIONS).write_bytes((v / PROJECTIONS).read_bytes()[:-7]),
        {},
    ),
    "emptied": (lambda v, c: (v / PROJECTIONS).write_bytes(b""), {}),
    "manifest-k-edited": (lambda v, c: _edit_json(v / MANIFEST, _set_k), {}),
    "manifest-site-edited": (lambda v, c: _edit_json(v / MANIFEST, _set_site), {}),
    "manifest-truncated": (
        lambda v, c: (v / MANIFEST).write_bytes((v / MANIFEST).read_bytes()[:40]),
        {},
    ),
    "forged-sha": (
        lambda v, c: _set_sha(v),
        # A folder carries no trust anchor besides its own manifest, so a consistent forgery of
        # both files cannot be told from an artifact; the registry's completion marker is the
        # anchor, so only references are tested.
        dict.fromkeys(("artifact-dir", "edit-dir"), NOT_APPLICABLE),
    ),
    "pickle-planted": (lambda v, c: (v / PROJECTIONS).write_bytes(tripwire_pickle(c)), {}),
    "pickle-as-manifest": (lambda v, c: (v / MANIFEST).write_bytes(tripwire_pickle(c)), {}),
    "torch-zip-planted": (lambda v, c: (v / PROJECTIONS).write_bytes(_torch_zip()), {}),
    "projections-deleted": (lambda v, c: (v / PROJECTIONS).unlink(), {}),
}

LOADERS = (
    "artifact-dir",
    "artifact-ref",
    "registry-load",
    "download",
    "edit-dir",
    "edit-ref",
    "cli-download",
)


def _load(loader: str, registry: Registry, folder: Path, out: Path, capsys: Any) -> str:
    """Load version 2 with ``loader``; return the one-line refusal (fails if it loads)."""
    url = registry.url
    calls: dict[str, Callable[[], object]] = {
        "artifact-dir": lambda: load_artifact(str(folder)),
        "artifact-ref": lambda: load_artifact("art@2", registry=url),
        "registry-load": lambda: registry.load("art@2"),
        "download": lambda: registry.download("art@2", out),
        "edit-dir": lambda: load_edit(folder),
        "edit-ref": lambda: load_edit("art@2", registry=url),
    }
    if loader == "cli-download":
        outcome = run_cli(["registry", "download", "art@2", str(out), f"--registry={url}"], capsys)
        assert refusal_problems(outcome) == []
        assert not (out / PROJECTIONS).exists()
        return outcome.text
    with pytest.raises(SeaDistError) as info:
        calls[loader]()
    return str(info.value)


def _params() -> list[Any]:
    params = []
    for name, (_, bugs) in CORRUPTIONS.items():
        for loader in LOADERS:
            if bugs.get(loader) == NOT_APPLICABLE:
                continue
            marks = [pytest.mark.xfail(strict=True, reason=bugs[loader])] if loader in bugs else []
            params.append(pytest.param(name, loader, id=f"{name}-{loader}", marks=marks))
    return params


@pytest.mark.parametrize(("corruption", "loader"), _params())
def test_corrupted_artifact_is_refused(
    corruption: str, loader: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = Registry(str(tmp_path / "registry"))
    for seed in (1, 2):
        registry.publish(write_synthetic_fit(tmp_path / f"fit{seed}", seed=seed), "art")
    folder = tmp_path / "registry" / "art" / "versions" / "2"
    canary = tmp_path / "CANARY"
    damage, _ = CORRUPTIONS[corruption]
    damage(folder, canary)

    message = _load(loader, registry, folder, tmp_path / "out", capsys)

    assert message and "\n" not in message.strip()
    assert not canary.exists(), "a loader unpickled the planted file"
    assert not (tmp_path / "out" / PROJECTIONS).exists()  # nothing half-downloaded
    intact = registry.load("art@1")  # the neighbour version is unharmed
    assert intact.manifest.version == 1 and intact.layers


# -- fit outputs (the input of publish and of load_edit on a fit folder) ---------------------------

FIT_DAMAGE: dict[str, Callable[[Path, Path], object]] = {
    "pickle-planted": lambda f, c: (f / PROJECTIONS).write_bytes(tripwire_pickle(c)),
    "torch-zip-planted": lambda f, c: (f / PROJECTIONS).write_bytes(_torch_zip()),
    "truncated": lambda f, c: (f / PROJECTIONS).write_bytes((f / PROJECTIONS).read_bytes()[:-9]),
    "fit-json-not-json": lambda f, c: (f / "fit.json").write_text("{", encoding="utf-8"),
    "fit-json-pickle": lambda f, c: (f / "fit.json").write_bytes(tripwire_pickle(c)),
}


def _fit_loader(name: str) -> Callable[[Path], object]:
    loaders: dict[str, Callable[[Path], object]] = {
        "publish": lambda f: Registry(str(f.parent / "registry")).publish(f, "fit"),
        "load-edit": load_edit,
        "fitresult-load": FitResult.load,
    }
    return loaders[name]


def _fit_params() -> list[Any]:
    params = []
    for damage in sorted(FIT_DAMAGE):
        for loader in ("publish", "load-edit", "fitresult-load"):
            params.append(pytest.param(damage, loader, id=f"{damage}-{loader}"))
    return params


@pytest.mark.parametrize(("damage", "loader"), _fit_params())
def test_corrupted_fit_output_is_refused(damage: str, loader: str, tmp_path: Path) -> None:
    fit = write_synthetic_fit(tmp_path / "fit", seed=5)
    canary = tmp_path / "CANARY"
    FIT_DAMAGE[damage](fit, canary)
    with pytest.raises(SeaDistError) as info:
        _fit_loader(loader)(fit)
    assert "\n" not in str(info.value)
    assert not canary.exists()
    assert (
        not (tmp_path / "registry").exists() or Registry(str(tmp_path / "registry")).names() == []
    )


# -- valid files that must NOT be refused ---------------------------------------------------------


def _pad_to_header_length(fit: Path, target: int) -> None:
    """Rewrite the fit's safetensors with metadata padding so its header is ``target`` bytes."""
    arrays = decode((fit / PROJECTIONS).read_bytes(), "test")
    for pad in range(4096):
        data = encode(arrays, metadata={"pad": "x" * pad})
        if int.from_bytes(data[:8], "little") == target:
            (fit / PROJECTIONS).write_bytes(data)
            return
    raise AssertionError(f"no padding gives a header of {target} bytes")


@pytest.mark.parametrize("header_length", [0x380, 0x680])
def test_valid_safetensors_with_0x80_first_byte_loads(header_length: int, tmp_path: Path) -> None:
    fit = write_synthetic_fit(tmp_path / "fit", seed=0)
    _pad_to_header_length(fit, header_length)
    assert (fit / PROJECTIONS).read_bytes()[0] == 0x80
    assert load_edit(fit).layer_indices == (1, 3)
    resolved = Registry(str(tmp_path / "registry")).publish(fit, "padded")
    assert load_artifact("padded@1", registry=str(tmp_path / "registry")).layers
    assert resolved.version == 1


# -- over HTTP: the client verifies what the server streams ----------------------------------------

HTTP_DAMAGE = (
    "flipped-byte-data",
    "truncated",
    "pickle-planted",
    "torch-zip-planted",
    "manifest-k-edited",
)


@pytest.mark.integration
@pytest.mark.parametrize("loader", ["http-load", "http-download", "load-edit-over-http"])
@pytest.mark.parametrize("corruption", HTTP_DAMAGE)
def test_corrupted_artifact_is_refused_over_http(
    corruption: str, loader: str, tmp_path: Path
) -> None:
    from sea_dist.registry.client import HttpRegistry
    from sea_dist.serve.server import BackgroundServer

    registry = Registry(str(tmp_path / "registry"))
    for seed in (1, 2):
        registry.publish(write_synthetic_fit(tmp_path / f"fit{seed}", seed=seed), "art")
    canary = tmp_path / "CANARY"
    CORRUPTIONS[corruption][0](tmp_path / "registry" / "art" / "versions" / "2", canary)
    with BackgroundServer(registry) as server:
        client = HttpRegistry(server.url)
        call = {
            "http-load": lambda: client.load("art@2"),
            "http-download": lambda: client.download("art@2", tmp_path / "out"),
            "load-edit-over-http": lambda: load_edit("art@2", registry=server.url),
        }[loader]
        with pytest.raises(SeaDistError) as info:
            call()
        assert "\n" not in str(info.value)
        assert client.load("art@1").manifest.version == 1
    assert not canary.exists() and not (tmp_path / "out" / PROJECTIONS).exists()
