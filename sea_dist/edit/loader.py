"""Read SEA projections from disk or a registry into a :class:`~sea_dist.edit.projections.SeaEdit`.

Two folder layouts hold the same tensors (docs/formats.md): a fit output (``fit.json`` +
``projections.safetensors``) and a published artifact (``manifest.json`` +
``projections.safetensors``). Both are read and checked by :mod:`sea_dist.format`, the one
reader: an artifact folder by :func:`sea_dist.format.artifact.read_local_artifact` (layout, no
pickle, sha256, shapes, values, and the manifest against its anchors), a fit output through
:class:`sea_dist.format.fit_record.FitRecord`, its seals and the same safetensors checks. A
registry reference (``name@3``, ``name@production``, ``sha256:<prefix>``) needs
:mod:`sea_dist.registry` (fsspec), imported only then, so reading folders needs nothing but
torch, numpy and safetensors.

Either layout may carry the publisher's :class:`~sea_dist.format.recipe.EditRecipe` (which layers,
strength, positions): an artifact under the manifest key ``recipe``, a fit output as an optional
``recipe.json`` beside ``fit.json``. Without one (everything written before recipes) the edit
loads exactly as before, with ``recipe`` None.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sea_dist.edit.projections import LayerProjection, SeaEdit, check_projection_tensors
from sea_dist.errors import ArtifactError, expected_found
from sea_dist.format.artifact import read_local_artifact
from sea_dist.format.files import FIT_FILE, MANIFEST_FILE, PROJECTIONS_FILE, RECIPE_FILE
from sea_dist.format.fit_record import CENTRED_KEY, fit_record_from_json
from sea_dist.format.recipe import EditRecipe
from sea_dist.format.seal import check_seal
from sea_dist.format.tensors import decode

RECIPE_KEY = "recipe"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(
            expected_found(
                str(path),
                "a readable JSON file",
                type(error).__name__,
                "re-run the step that wrote it",
            )
        ) from None
    if not isinstance(data, dict):
        raise ArtifactError(expected_found(str(path), "a JSON object", type(data).__name__))
    return data


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ArtifactError(
            expected_found(
                what, f"a file at {str(path)!r}", "no file", "point at a fit output folder"
            )
        ) from None


def _as_torch(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.array(array, copy=True)) for name, array in arrays.items()}


def _layer_indices(entries: Any, what: str) -> list[int]:
    """Layer indices from a list of ints or of ``{"layer": L, ...}`` objects."""
    if not isinstance(entries, list) or not entries:
        raise ArtifactError(expected_found(f"{what}: layers", "a non-empty list", entries))
    indices = []
    for entry in entries:
        value = entry.get("layer") if isinstance(entry, dict) else entry
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ArtifactError(expected_found(f"{what}: layer entry", "an index >= 0", entry))
        indices.append(value)
    return indices


def _layer_projections(
    tensors: Mapping[str, torch.Tensor], layers: list[int], centred: bool, what: str
) -> dict[int, LayerProjection]:
    result = {}
    for layer in sorted(layers):
        prefix = f"layers.{layer}."
        missing = [n for n in ("U_pos", "U_neg") if prefix + n not in tensors]
        if centred and prefix + "mean" not in tensors:
            missing.append("mean")
        if missing:
            raise ArtifactError(
                expected_found(
                    f"{what}: layer {layer}",
                    f"tensors {', '.join(prefix + n for n in missing)}",
                    "them missing",
                    "re-run the fit or publish step",
                )
            )
        mean = tensors.get(prefix + "mean")
        result[layer] = LayerProjection(
            layer=layer,
            u_pos=tensors[prefix + "U_pos"].to(torch.float32).contiguous(),
            u_neg=tensors[prefix + "U_neg"].to(torch.float32).contiguous(),
            mean=mean.to(torch.float32).contiguous() if centred and mean is not None else None,
        )
    return result


def _feature_map(data: Any, what: str) -> tuple[str, float]:
    if data is None:
        return "linear", 1.0
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ArtifactError(expected_found(f"{what}: feature_map", "{name, scale}", data))
    scale = data.get("scale", 1.0)
    if not isinstance(scale, int | float) or isinstance(scale, bool) or scale <= 0:
        raise ArtifactError(expected_found(f"{what}: feature_map.scale", "a number > 0", scale))
    return str(data["name"]), float(scale)


def _recipe(data: Any, what: str) -> EditRecipe | None:
    """The recipe from a manifest's ``recipe`` value (absent / null: None)."""
    if data is None or isinstance(data, EditRecipe):
        return data
    return EditRecipe.from_dict(data, f"{what}: {RECIPE_KEY}")


def edit_from_fields(
    fields: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    source: str,
    manifest: Mapping[str, Any] | None = None,
    *,
    check_values: bool = True,
) -> SeaEdit:
    """Build a :class:`SeaEdit` from manifest-style fields and the projection tensors.

    Args:
        fields: ``model_id, architecture, d_model, n_model_layers, site, site_template, layers,
            combine, feature_map {name, scale}, centred`` and optionally ``recipe`` (the
            artifact manifest keys).
        tensors: ``layers.L.U_pos`` / ``U_neg`` / ``mean`` by name (any float dtype; CPU).
        source: where they came from, for messages.
        manifest: the raw document, kept for provenance (default: ``fields``).
        check_values: check the tensors' dtypes and values
            (:func:`~sea_dist.edit.projections.check_projection_tensors`: finite, orthonormal
            bases); False only for tensors that :func:`sea_dist.registry.load_artifact`
            has already checked with the same rule.

    Raises:
        ArtifactError: a field or tensor is missing or malformed, a value is NaN or inf, or a
            basis is not orthonormal.
    """
    what = source
    for key, kind in (
        ("model_id", str),
        ("architecture", str),
        ("site", str),
        ("combine", str),
        ("d_model", int),
        ("n_model_layers", int),
    ):
        value = fields.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ArtifactError(
                expected_found(
                    f"{what}: {key}", kind.__name__, value, "re-run the fit or publish step"
                )
            )
    template = fields.get("site_template")
    if template is not None and not isinstance(template, str):
        raise ArtifactError(expected_found(f"{what}: site_template", "a string or null", template))
    centred = bool(fields.get(CENTRED_KEY, False))
    name, scale = _feature_map(fields.get("feature_map"), what)
    layers = _layer_indices(fields.get("layers"), what)
    recipe = _recipe(fields.get(RECIPE_KEY), what)
    if check_values:  # before the float32 cast below, so a wrong dtype is seen as stored
        check_projection_tensors(tensors, what)
    return SeaEdit(
        layers=_layer_projections(tensors, layers, centred, what),
        site=str(fields["site"]),
        site_template=template,
        combine=str(fields["combine"]),
        feature_map=name,
        feature_map_scale=scale,
        model_id=str(fields["model_id"]),
        architecture=str(fields["architecture"]),
        d_model=int(fields["d_model"]),
        n_model_layers=int(fields["n_model_layers"]),
        centred=centred,
        source=source,
        manifest=dict(manifest if manifest is not None else fields),
        recipe=recipe,
    )


def _load_fit_folder(folder: Path) -> SeaEdit:
    raw = _read_bytes(folder / FIT_FILE, "fit.json")
    record = fit_record_from_json(raw, str(folder), "upgrade sea-dist to read newer fit outputs")
    fields = record.edit_fields()
    if (folder / RECIPE_FILE).is_file():  # optional: fit outputs before recipes have none
        fields[RECIPE_KEY] = _read_json(folder / RECIPE_FILE)
    what = str(folder / PROJECTIONS_FILE)
    projections = _read_bytes(folder / PROJECTIONS_FILE, "projections")
    tensors = _as_torch(decode(projections, what))  # refuses a pickle or a truncated file
    check_seal(record.data, projections, str(folder))
    return edit_from_fields(fields, tensors, str(folder), manifest=record.data)


def _load_artifact_folder(folder: Path) -> SeaEdit:
    content = read_local_artifact(folder)  # verified: layout, sha256, shapes, values, anchors
    fields = content.manifest.to_dict()
    tensors = _as_torch(content.arrays)
    # read_local_artifact checked the values (sea_dist.format.values, the same rule).
    return edit_from_fields(fields, tensors, str(folder), manifest=fields, check_values=False)


def _from_artifact_object(artifact: Any, source: str) -> SeaEdit:
    """Adapt a verified :class:`sea_dist.registry.Artifact` (manifest + per-layer factors)."""
    fields = artifact.manifest.to_dict()
    tensors: dict[str, torch.Tensor] = {}
    for layer, proj in artifact.layers.items():
        for name, value in (("U_pos", proj.U_pos), ("U_neg", proj.U_neg), ("mean", proj.mean)):
            if value is not None:
                tensors[f"layers.{layer}.{name}"] = torch.as_tensor(value)
    # load_artifact checked the values (sea_dist.format.values, the same rule).
    return edit_from_fields(fields, tensors, source, manifest=fields, check_values=False)


def _load_reference(source: str, registry: str | None) -> SeaEdit:
    """Resolve a registry reference with :func:`sea_dist.registry.load_artifact`."""
    try:
        from sea_dist.registry.access import load_artifact
    except ImportError:  # a serving image without fsspec reads folders only
        raise ArtifactError(
            expected_found(
                "projections",
                "an existing folder, or a registry reference (needs sea_dist.registry: fsspec)",
                source,
                "check the path, or install fsspec to resolve registry references",
            )
        ) from None
    return _from_artifact_object(
        load_artifact(source, registry=registry, framework="torch"), source
    )


def load_edit(source: str | Path | SeaEdit, registry: str | None = None) -> SeaEdit:
    """Load SEA projections from a folder or a registry reference.

    Args:
        source: a fit output folder (``fit.json``), an artifact folder (``manifest.json``; its
            sha256 is verified), or a registry reference such as ``name@3`` or ``name:alias``,
            resolved with :func:`sea_dist.registry.load_artifact` (imported only then).
        registry: registry location for references (default: the artifacts module's default).

    Returns:
        The projections as float32 CPU tensors, with the publisher's recipe when the artifact
        (manifest key ``recipe``) or fit output (``recipe.json``) has one.

    Raises:
        ArtifactError: a malformed, tampered or unknown artifact.
    """
    if isinstance(source, SeaEdit):  # already loaded: let callers pass either
        return source
    folder = Path(source).expanduser()
    if folder.is_dir():
        if (folder / MANIFEST_FILE).is_file():
            return _load_artifact_folder(folder)
        if (folder / FIT_FILE).is_file():
            return _load_fit_folder(folder)
        raise ArtifactError(
            expected_found(
                "projections folder",
                f"{MANIFEST_FILE} or {FIT_FILE} in {str(folder)!r}",
                sorted(p.name for p in folder.iterdir())[:8],
                "point at an artifact or fit output folder",
            )
        )
    return _load_reference(str(source), registry)
