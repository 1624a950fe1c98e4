"""The fit result and its folder: ``fit.json`` + ``projections.safetensors`` (docs/formats.md).

The folder is written atomically: into a hidden temporary sibling, fsynced, then renamed into
place, so a reader never sees half a fit. An existing non-empty folder is refused unless
``overwrite``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from sea_dist.config import FitConfig, config_from_dict, config_to_dict
from sea_dist.errors import FitError, expected_found
from sea_dist.feature_maps import FeatureMap
from sea_dist.format.seal import check_seal, seal
from sea_dist.format.tensor_file import tensor_file_bytes

SCHEMA_VERSION = 1
FIT_JSON = "fit.json"
PROJECTIONS = "projections.safetensors"


@dataclass(frozen=True)
class LayerProjection:
    """The SEA projections of one layer.

    Attributes:
        layer: decoder layer number in the model.
        U_pos: (d, k_pos) left singular vectors of Omega+ kept (float64 fresh, float32 loaded).
        U_neg: (d, k_neg) left singular vectors of Omega- removed.
        S_pos, S_neg: (m,) float64 singular values (full spectrum for exact/qr, top for randomized).
        k_pos, k_neg: kept ranks.
        energy_pos, energy_neg: captured energy ratios ``sum(s[:k]^2) / ||Omega||_F^2``.
        total_energy_pos, total_energy_neg: ``||Omega+||_F^2``, ``||Omega-||_F^2``.
        mean: (d,) neutral feature mean in feature space when centred, else None.
        signature: sum of singular values of Cov([X+; X-], labels) (layer-choice diagnostic).
        svd_path: ``exact``, ``qr`` or ``randomized`` (the path actually used).
    """

    layer: int
    U_pos: np.ndarray
    U_neg: np.ndarray
    S_pos: np.ndarray
    S_neg: np.ndarray
    k_pos: int
    k_neg: int
    energy_pos: float
    energy_neg: float
    total_energy_pos: float
    total_energy_neg: float
    mean: np.ndarray | None
    signature: float
    svd_path: str

    @property
    def d(self) -> int:
        """Feature width."""
        return int(self.U_pos.shape[0])

    def summary(self) -> dict[str, Any]:
        """The per-layer entry of ``fit.json``."""
        return {
            "layer": self.layer,
            "k_pos": self.k_pos,
            "k_neg": self.k_neg,
            "energy_pos": self.energy_pos,
            "energy_neg": self.energy_neg,
            "total_energy_pos": self.total_energy_pos,
            "total_energy_neg": self.total_energy_neg,
            "signature": self.signature,
        }


@dataclass(frozen=True)
class FitResult:
    """All layers' projections plus the provenance written to ``fit.json``.

    Attributes:
        layers: one projection per recorded layer, in store order.
        config: the resolved fit configuration.
        store_url: the activation store fitted.
        store_attrs: the store's group attributes.
        feature_map: the Phi-SEA map (``linear`` for plain SEA).
        created_at: ISO-8601 UTC.
    """

    layers: tuple[LayerProjection, ...]
    config: FitConfig
    store_url: str
    store_attrs: dict[str, Any]
    feature_map: FeatureMap
    created_at: str

    @property
    def centred(self) -> bool:
        """Whether the activations were centred (means stored)."""
        return self.config.centre

    def layer(self, layer: int) -> LayerProjection:
        """The projection of model layer ``layer``.

        Raises:
            FitError: the layer was not fitted.
        """
        for projection in self.layers:
            if projection.layer == layer:
                return projection
        raise FitError(expected_found("layer", f"one of {[p.layer for p in self.layers]}", layer))

    def to_json(self) -> dict[str, Any]:
        """The content of ``fit.json``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "store": {"url": self.store_url, "attrs": self.store_attrs},
            "config": config_to_dict(self.config),
            "svd_path": {str(p.layer): p.svd_path for p in self.layers},
            "feature_map": self.feature_map.to_dict(),
            "combine": self.config.combine,
            "centred": self.centred,
            "layers": [p.summary() for p in self.layers],
            "created_at": self.created_at,
        }

    def tensors(self) -> dict[str, np.ndarray]:
        """The tensors of ``projections.safetensors`` (U float32, S float64, mean float32)."""
        tensors: dict[str, np.ndarray] = {}
        for p in self.layers:
            prefix = f"layers.{p.layer}."
            tensors[prefix + "U_pos"] = np.ascontiguousarray(p.U_pos, dtype=np.float32)
            tensors[prefix + "U_neg"] = np.ascontiguousarray(p.U_neg, dtype=np.float32)
            tensors[prefix + "S_pos"] = np.ascontiguousarray(p.S_pos, dtype=np.float64)
            tensors[prefix + "S_neg"] = np.ascontiguousarray(p.S_neg, dtype=np.float64)
            if p.mean is not None:
                tensors[prefix + "mean"] = np.ascontiguousarray(p.mean, dtype=np.float32)
        return tensors

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the fit folder atomically.

        Raises:
            FitError: ``path`` exists and is not an empty folder, and ``overwrite`` is false.
        """
        check_output_dir(path, overwrite)
        target = Path(path)
        try:
            return self._save(target)
        except (OSError, SafetensorError) as error:
            raise FitError(
                expected_found(
                    f"fit output {str(target)!r}",
                    "a writable folder",
                    f"{type(error).__name__}: {getattr(error, 'strerror', None) or error}",
                    "choose another --out or free space (nothing was written)",
                )
            ) from None

    def _save(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        temporary.mkdir()
        try:
            # Reproducible bytes: equal fits publish equal sha256s, whichever process wrote them.
            projections = tensor_file_bytes(
                self.tensors(),
                {"format": "sea-dist-fit", "schema_version": str(SCHEMA_VERSION)},
            )
            (temporary / PROJECTIONS).write_bytes(projections)
            # fit.json seals the projections' bytes and its own content (sea_dist.format.seal)
            record = seal(self.to_json(), projections)
            (temporary / FIT_JSON).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            for name in (PROJECTIONS, FIT_JSON):
                with open(temporary / name, "rb") as handle:
                    os.fsync(handle.fileno())
            _replace_dir(temporary, target)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        """Read a fit folder written by :meth:`save`.

        Raises:
            FitError: missing files or an unknown schema version.
        """
        folder = Path(path)
        if not (folder / FIT_JSON).is_file() or not (folder / PROJECTIONS).is_file():
            raise FitError(
                expected_found(
                    "fit folder",
                    f"{FIT_JSON} and {PROJECTIONS}",
                    str(folder),
                    "run 'sea-dist fit' first",
                )
            )
        try:
            data = json.loads((folder / FIT_JSON).read_text(encoding="utf-8"))
            tensors = load_file(str(folder / PROJECTIONS))
        except (ValueError, OSError, SafetensorError) as error:
            # ValueError covers JSON and UTF-8 errors; a pickle or truncated file is refused here.
            raise FitError(
                expected_found(
                    f"fit folder {str(folder)!r}",
                    f"a JSON {FIT_JSON} and a safetensors {PROJECTIONS}",
                    f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                    "re-run 'sea-dist fit' to rewrite it",
                )
            ) from None
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise FitError(
                expected_found(
                    "fit.json schema_version",
                    str(SCHEMA_VERSION),
                    data.get("schema_version") if isinstance(data, dict) else data,
                    "refit with this sea-dist version",
                )
            )
        check_seal(data, (folder / PROJECTIONS).read_bytes(), f"fit folder {str(folder)!r}")
        layers = []
        for entry in data["layers"]:
            prefix = f"layers.{entry['layer']}."
            layers.append(
                LayerProjection(
                    layer=int(entry["layer"]),
                    U_pos=tensors[prefix + "U_pos"],
                    U_neg=tensors[prefix + "U_neg"],
                    S_pos=tensors[prefix + "S_pos"],
                    S_neg=tensors[prefix + "S_neg"],
                    k_pos=int(entry["k_pos"]),
                    k_neg=int(entry["k_neg"]),
                    energy_pos=float(entry["energy_pos"]),
                    energy_neg=float(entry["energy_neg"]),
                    total_energy_pos=float(entry["total_energy_pos"]),
                    total_energy_neg=float(entry["total_energy_neg"]),
                    mean=tensors.get(prefix + "mean"),
                    signature=float(entry["signature"]),
                    svd_path=str(data["svd_path"][str(entry["layer"])]),
                )
            )
        return cls(
            layers=tuple(layers),
            config=config_from_dict(data["config"], FitConfig),
            store_url=data["store"]["url"],
            store_attrs=data["store"]["attrs"],
            feature_map=FeatureMap.from_dict(data["feature_map"]),
            created_at=data["created_at"],
        )


def now_utc() -> str:
    """ISO-8601 UTC timestamp (seconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def check_output_dir(out: str | Path, overwrite: bool) -> None:
    """Refuse an existing non-empty output folder (or a file) unless ``overwrite``, and a URL.

    The fit folder is written locally (atomically, by rename); ``Path("s3://b/fit")`` would
    silently become the local folder ``s3:/b/fit``, so a URL is refused, with the way to put the
    fit on object storage: publish it to a registry there.
    """
    if "://" in str(out):
        raise FitError(
            expected_found(
                "--out",
                "a local folder (the fit folder is written locally)",
                f"the URL {str(out)!r}",
                "give a local folder and publish it to a registry on object storage "
                "(sea-dist publish FIT --registry s3://...)",
            )
        )
    target = Path(out)
    if not target.exists():
        ancestor = next(p for p in target.absolute().parents if p.exists())
        if not ancestor.is_dir():
            raise FitError(
                expected_found(
                    "--out",
                    "a path whose parents are folders",
                    f"a file at {str(ancestor)!r}",
                    "choose another path",
                )
            )
        return
    if not target.is_dir():
        raise FitError(
            expected_found(
                "--out", "a folder path", f"a file at {str(target)!r}", "choose another path"
            )
        )
    if any(target.iterdir()) and not overwrite:
        raise FitError(
            expected_found(
                "--out",
                "a new or empty folder",
                f"non-empty {str(target)!r}",
                "choose another folder or pass --overwrite",
            )
        )


def _replace_dir(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``; an existing ``target`` is swapped out, then deleted."""
    if target.exists() and any(target.iterdir()):
        retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, retired)
        os.replace(source, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(source, target)  # POSIX rename replaces an empty folder atomically
