"""A human summary of one version (``sea-dist registry show``): model, fit, recipe, gate verdict.

``--json`` prints the manifest itself; this is the text a person reads before promoting a version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sea_dist.format.manifest import Manifest
from sea_dist.format.recipe import DAMAGE_METRICS, EditRecipe, EvaluationRecord, gate_failures


def _number(value: float | None, signed: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return "not measured"
    if abs(value) >= 10:
        return f"{value:.4g}"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def recipe_line(recipe: EditRecipe | None) -> str:
    """``recipe: ...`` (or how the projections apply without one)."""
    if recipe is None:
        return "recipe: none (every fitted layer, full strength, every position)"
    layers = recipe.layers if isinstance(recipe.layers, str) else ",".join(map(str, recipe.layers))
    energies = ""
    if recipe.positive_energy is not None or recipe.negative_energy is not None:
        energies = f", K+ {recipe.positive_energy}, K- {recipe.negative_energy}"
    name = f" {recipe.name!r}" if recipe.name else ""
    return (
        f"recipe{name}: layers {layers}, alpha {recipe.alpha:g}, positions {recipe.positions}, "
        f"site {recipe.site}, combine {recipe.combine}, centred {recipe.centred}, "
        f"feature map {recipe.feature_map.get('name', 'linear')}{energies}"
    )


def gate_lines(record: EvaluationRecord | None) -> list[str]:
    """``gate: pass | FAIL | unevaluated`` with one indented line per reason and the metrics."""
    reasons = gate_failures(record)
    if record is None:
        return ["gate: unevaluated", *[f"  - {r}" for r in reasons]]
    lines = [f"gate: {'pass' if not reasons else 'FAIL'}", *[f"  - {r}" for r in reasons]]
    metrics = record.metrics
    lines.append(
        f"evaluation ({record.source or 'unknown source'}, {record.evaluated_at}): "
        f"{record.effect} {_number(metrics.get('effect'))} "
        f"(95% lower end {_number(metrics.get('effect_lo'))})"
    )
    budget = record.budget
    limits = {
        "perplexity_ratio": f"<= {budget.max_perplexity_ratio:g}",
        "builtin_accuracy_delta": f">= {-budget.max_builtin_accuracy_drop:g}",
        "logprob_per_token_delta": f">= {budget.min_logprob_per_token_delta:g}",
        "generation_delta": f">= {-budget.max_generation_drop:g}",
    }
    for key in DAMAGE_METRICS:
        shown = _number(metrics.get(key), signed=key != "perplexity_ratio")
        lines.append(f"  {key}: {shown} (budget {limits[key]})")
    if record.data_fingerprints:
        data = ", ".join(f"{k} {v}" for k, v in sorted(record.data_fingerprints.items()))
        lines.append(f"  data: {data}")
    return lines


def describe(manifest: Manifest, aliases: Sequence[str] = ()) -> str:
    """Multi-line summary of ``manifest`` (and the aliases that point at it)."""
    k_pos = ",".join(str(s.k_pos) for s in manifest.per_layer)
    k_neg = ",".join(str(s.k_neg) for s in manifest.per_layer)
    lines = [
        f"{manifest.ref}  sha256:{manifest.sha256}  created {manifest.created_at}",
        f"model: {manifest.model_id} ({manifest.architecture}, d={manifest.d_model}, "
        f"{manifest.n_model_layers} layers)  revision {manifest.model_revision}",
        f"fit: site {manifest.site}, layers {','.join(map(str, manifest.layers))}, "
        f"k+ {k_pos}, k- {k_neg}, combine {manifest.combine}, centred {manifest.centred}",
        recipe_line(manifest.edit_recipe()),
        *gate_lines(manifest.evaluation_record()),
        f"aliases: {', '.join(aliases) if aliases else 'none'}",
        f"code: {manifest.code_version}",
    ]
    return "\n".join(lines)


def history_note(move: dict[str, Any]) -> str:
    """``  gate passed`` / ``  FORCED past the gate (<reasons>): <reason>`` for an alias history
    record (empty for an ungated move or a record written before the gate)."""
    gate = move.get("gate")
    if not isinstance(gate, dict):
        return ""
    if move.get("forced"):
        reasons = "; ".join(gate.get("reasons") or [])
        return f"  FORCED past the gate ({reasons}): {move.get('reason')}"
    return "  gate passed" if gate.get("passed") else ""
