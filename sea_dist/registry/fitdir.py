"""Read a fit-output folder (``fit.json`` + ``projections.safetensors``); check it can be published.

The format is documented in docs/formats.md section 2. Everything is validated before anything is
written to a registry: the JSON fields, the safetensors layout (no pickle), and that every tensor
has the shape ``fit.json`` promises (U+ is (d, k_pos), U- is (d, k_neg), S has m >= k entries,
mean is (d,) exactly when the fit was centred).

Optional beside them: ``recipe.json`` (an :class:`~sea_dist.format.recipe.EditRecipe`) and
``evaluation.json`` (an :class:`~sea_dist.format.recipe.EvaluationRecord`); publishing copies them
into the manifest. An evaluation that names the projections it measured
(``data_fingerprints["projections"]``, a sha256 prefix) must match these projections, so a record
left over from another fit is refused rather than published as this one's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import fsspec.core

from sea_dist.errors import ArtifactError, expected_found
from sea_dist.format.files import EVALUATION_FILE, FIT_FILE, PROJECTIONS_FILE, RECIPE_FILE
from sea_dist.format.fit_record import FitRecord, fit_record_from_json
from sea_dist.format.manifest import LayerSummary, Manifest, parse_evaluation, parse_recipe
from sea_dist.format.recipe import PROJECTIONS_FINGERPRINT, EditRecipe, EvaluationRecord
from sea_dist.format.seal import check_seal
from sea_dist.format.tensors import (
    TensorInfo,
    check_tensor_names,
    decode,
    parse_header,
    sha256_hex,
)
from sea_dist.format.values import check_projection_values
from sea_dist.registry.manifest import code_version, fingerprint, utc_now


@dataclass(frozen=True)
class FitOutput:
    """A validated fit-output folder held in memory."""

    url: str
    fit: dict[str, Any]
    """The parsed ``fit.json``."""
    projections: bytes
    """The raw ``projections.safetensors`` bytes (published unchanged)."""
    tensors: dict[str, TensorInfo]
    record: FitRecord
    """``fit.json`` checked (:mod:`sea_dist.format.fit_record`)."""
    recipe: EditRecipe | None = None
    """From the optional ``recipe.json``."""
    evaluation: EvaluationRecord | None = None
    """From the optional ``evaluation.json``."""


def _fail(what: str, expected: str, found: object, fix: str = "") -> ArtifactError:
    return ArtifactError(expected_found(what, expected, found, fix))


def read_fit_output(url: str) -> FitOutput:
    """Read and validate the fit output at ``url`` (local folder or fsspec URL).

    Raises:
        ArtifactError: a file is missing, ``fit.json`` is malformed or of an unknown schema, or the
            tensors do not match it.
    """
    fs, root = fsspec.core.url_to_fs(str(url))
    root = str(root).rstrip("/")
    what = f"fit output {url}"
    try:
        raw_fit = fs.cat_file(f"{root}/{FIT_FILE}")
        projections = bytes(fs.cat_file(f"{root}/{PROJECTIONS_FILE}"))
    except FileNotFoundError as error:
        raise _fail(
            what,
            f"a folder with {FIT_FILE} and {PROJECTIONS_FILE}",
            f"no {error.filename or 'file'}",
            "run 'sea-dist fit' first",
        ) from None
    except (IsADirectoryError, NotADirectoryError):
        raise _fail(what, "a folder", url) from None
    record = fit_record_from_json(raw_fit, what, "publish with the sea-dist version that fitted it")
    fit = record.data
    check_seal(fit, projections, what)  # a flipped byte in either file is never published
    tensors = parse_header(projections, f"{what}: {PROJECTIONS_FILE}")
    check_tensor_names(tensors, f"{what}: {PROJECTIONS_FILE}")
    _check_fit(record, tensors, what)
    # NaN, inf or a basis that is not orthonormal must never be published (nor loaded).
    check_projection_values(
        decode(projections, f"{what}: {PROJECTIONS_FILE}"), f"{what}: {PROJECTIONS_FILE}"
    )
    recipe_data = _optional_json(fs, f"{root}/{RECIPE_FILE}", f"{what}: {RECIPE_FILE}")
    evaluation_data = _optional_json(fs, f"{root}/{EVALUATION_FILE}", f"{what}: {EVALUATION_FILE}")
    return FitOutput(
        url=str(url),
        fit=fit,
        projections=projections,
        tensors=tensors,
        record=record,
        recipe=None if recipe_data is None else parse_recipe(recipe_data, f"{what}: {RECIPE_FILE}"),
        evaluation=None
        if evaluation_data is None
        else parse_evaluation(evaluation_data, f"{what}: {EVALUATION_FILE}"),
    )


def _optional_json(fs: Any, path: str, what: str) -> Any:
    """The parsed JSON file at ``path``, or None when there is no such file."""
    try:
        raw = fs.cat_file(path)
    except FileNotFoundError:
        return None
    except (IsADirectoryError, NotADirectoryError):
        raise _fail(what, "a JSON file", "a folder") from None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(what, "valid JSON", str(error)) from None


def check_evaluation_matches(
    evaluation: EvaluationRecord | None, projections_sha256: str, what: str
) -> None:
    """Refuse an evaluation record that names other projections than ``projections_sha256``.

    Raises:
        ArtifactError: ``data_fingerprints["projections"]`` is not a prefix of the sha256.
    """
    if evaluation is None:
        return
    named = evaluation.data_fingerprints.get(PROJECTIONS_FINGERPRINT)
    if named is not None and (len(named) < 8 or not projections_sha256.startswith(named)):
        raise _fail(
            f"{what}: evaluation data_fingerprints.{PROJECTIONS_FINGERPRINT}",
            f"a prefix of the projections' sha256 {projections_sha256[:16]}",
            named,
            "evaluate these projections again (the record belongs to another fit)",
        )


def _check_fit(record: FitRecord, tensors: dict[str, TensorInfo], what: str) -> None:
    attrs = record.store_attrs
    if not isinstance(attrs.get("demonstrations_fingerprint"), str):
        raise _fail(
            f"{what}: store.attrs.demonstrations_fingerprint",
            "str",
            attrs.get("demonstrations_fingerprint"),
        )
    d = attrs["d_model"]
    seen: set[int] = set()
    for entry in record.layers:
        layer, k_pos, k_neg = entry["layer"], entry["k_pos"], entry["k_neg"]
        seen.add(layer)
        expected: dict[str, tuple[int, ...]] = {
            f"layers.{layer}.U_pos": (d, k_pos),
            f"layers.{layer}.U_neg": (d, k_neg),
        }
        if record.centred:
            expected[f"layers.{layer}.mean"] = (d,)
        for name, shape in expected.items():
            info = tensors.get(name)
            if info is None or info.shape != shape:
                raise _fail(
                    f"{what}: tensor {name}",
                    f"shape {shape}",
                    info.shape if info else "no such tensor",
                )
        for side, k in (("S_pos", k_pos), ("S_neg", k_neg)):
            info = tensors.get(f"layers.{layer}.{side}")
            if info is None or len(info.shape) != 1 or info.shape[0] < k:
                raise _fail(
                    f"{what}: tensor layers.{layer}.{side}",
                    f"shape (m,) with m >= {k}",
                    info.shape if info else "no such tensor",
                )
    extra = {n.split(".")[1] for n in tensors} - {str(s) for s in seen}
    if extra:
        raise _fail(
            f"{what}: tensors", f"only the layers listed in {FIT_FILE}", sorted(extra, key=int)
        )


def build_manifest(
    fit_output: FitOutput,
    name: str,
    config: dict[str, Any] | None = None,
    created_at: str | None = None,
    input_fingerprint: str | None = None,
    *,
    recipe: EditRecipe | None = None,
    evaluation: EvaluationRecord | None = None,
) -> Manifest:
    """The manifest of a staged artifact (``version`` None) for a validated fit output.

    Args:
        fit_output: from :func:`read_fit_output`.
        name: registry name.
        config: the full resolved run config, if known; merged over the fit settings.
        created_at: override the publication time (tests, reproducible builds).
        input_fingerprint: fingerprint of the run's inputs (see the scheduler).
        recipe: the edit recipe; default the fit output's ``recipe.json`` (if any).
        evaluation: the evaluation record; default the fit output's ``evaluation.json`` (if any).

    Raises:
        ArtifactError: the evaluation record names other projections.
    """
    recipe = recipe if recipe is not None else fit_output.recipe
    evaluation = evaluation if evaluation is not None else fit_output.evaluation
    sha256 = sha256_hex(fit_output.projections)
    check_evaluation_matches(evaluation, sha256, f"fit output {fit_output.url}")
    record = fit_output.record
    attrs = record.store_attrs
    fit_config = record.config
    svd_path = record.svd_path
    per_layer = tuple(
        LayerSummary(
            layer=e["layer"],
            k_pos=e["k_pos"],
            k_neg=e["k_neg"],
            energy_pos=float(e.get("energy_pos", float("nan"))),
            energy_neg=float(e.get("energy_neg", float("nan"))),
            total_energy_pos=e.get("total_energy_pos"),
            total_energy_neg=e.get("total_energy_neg"),
            signature=e.get("signature"),
            svd_path=svd_path.get(str(e["layer"])),
        )
        for e in record.layers
    )
    resolved = dict(config) if config else {}
    if fit_config or "fit" not in resolved:
        resolved["fit"] = fit_config  # what the fit actually used wins over a YAML file
    fixed_k = fit_config.get("fixed_k")
    return Manifest(
        name=name,
        version=None,
        sha256=sha256,
        size_bytes=len(fit_output.projections),
        model_id=attrs["model_id"],
        model_revision=attrs.get("model_revision"),
        architecture=attrs["architecture"],
        d_model=attrs["d_model"],
        n_model_layers=attrs["n_model_layers"],
        site=attrs["site"],
        site_template=attrs.get("site_template"),
        layers=tuple(s.layer for s in per_layer),
        combine=record.combine,
        centred=record.centred,
        feature_map=dict(record.feature_map),
        positive_energy=None if fixed_k else fit_config.get("positive_energy"),
        negative_energy=None if fixed_k else fit_config.get("negative_energy"),
        per_layer=per_layer,
        store_fingerprint=fingerprint(attrs),
        demonstrations_fingerprint=attrs["demonstrations_fingerprint"],
        code_version=code_version(),
        created_at=created_at or utc_now(),
        input_fingerprint=input_fingerprint,
        tokenizer_fingerprint=attrs.get("tokenizer_fingerprint"),
        token=attrs.get("token"),
        neutral=attrs.get("neutral"),
        fixed_k=fixed_k,
        n_rows=attrs.get("n_rows"),
        store_url=record.store_url,
        store_attrs=dict(attrs),
        config=resolved,
        fitted_at=record.created_at,
        recipe=None if recipe is None else recipe.to_dict(),
        evaluation=None if evaluation is None else evaluation.to_dict(),
    )
