"""The evaluation record of a run's fit: effect next to random controls, and damage (the gate).

``sea-dist run`` fits on the built-in demonstrations, so TruthfulQA is held out (questions that
are also demonstrations are dropped). On those questions (``evaluate.data_dir``,
``evaluate.limit``, the seeded subset the runner uses) each question's MC2 is scored

- unedited,
- edited: the fit folder applied with its recipe (``recipe.json`` when the folder has one, else
  the run's recipe: ``evaluate.layers``, full strength, every position), and
- under :data:`N_CONTROLS` random-subspace controls: per layer, random orthonormal ``U_pos`` /
  ``U_neg`` of the fitted shapes (same k), same means and recipe, seeded.

The effect ``truthfulqa_mc2_margin`` is the mean over questions of MC2(SEA) - MC2(best control),
the best control being the one with the highest mean MC2; ``effect_lo`` / ``effect_hi`` bound its
paired percentile-bootstrap 95% interval. Damage (the keys of
:data:`sea_dist.format.recipe.DAMAGE_METRICS`): held-out perplexity edited / unedited, built-in
two-choice accuracy and greedy answer rate edited minus unedited
(:func:`sea_dist.evaluate.capability.measure_capability`), and the mean change of log p per
TruthfulQA answer token. Without the benchmark file the effect and the per-token change are None
("not measured": the gate refuses); no number is ever made up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sea_dist.config import SeaConfig
from sea_dist.data import load_demonstrations, load_truthfulqa_items, make_template
from sea_dist.edit import apply_edit, load_edit
from sea_dist.edit.projections import LayerProjection, SeaEdit
from sea_dist.errors import ConfigError, expected_found
from sea_dist.evaluate.capability import CapabilityInputs, measure_capability
from sea_dist.evaluate.loglik import EncodedPairs, SpanScores
from sea_dist.evaluate.report import MetricRow
from sea_dist.evaluate.runner import builtin_questions, subset, task_file
from sea_dist.evaluate.stats import mean_logprob_change_per_token, paired_bootstrap
from sea_dist.evaluate.truthfulqa import mc_from_logprobs, truthfulqa_pairs
from sea_dist.format.files import EVALUATION_FILE, PROJECTIONS_FILE, RECIPE_FILE
from sea_dist.format.recipe import PROJECTIONS_FINGERPRINT, EditRecipe, EvaluationRecord

EFFECT = "truthfulqa_mc2_margin"
N_CONTROLS = 3
CONTROL_SEED = 20_240_517
"""Base seed of the random-subspace controls (with the control's number and the layer)."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateEvaluation:
    """What :func:`gate_evaluation` measured.

    Attributes:
        record: the evaluation record (the gate reads it).
        recipe: the recipe the edit was applied with (publish it with the record).
        rows: before / after rows for the run's table (task, metric, unedited, edited, n).
        notes: what the reader of the report should know (held-out set, missing data).
    """

    record: EvaluationRecord
    recipe: EditRecipe
    rows: tuple[MetricRow, ...]
    notes: tuple[str, ...]

    def write(self, fit_dir: str | Path) -> None:
        """Write ``recipe.json`` and ``evaluation.json`` into the fit folder (docs/formats.md)."""
        folder = Path(fit_dir)
        for name, data in ((RECIPE_FILE, self.recipe), (EVALUATION_FILE, self.record)):
            (folder / name).write_text(json.dumps(data.to_dict(), indent=2) + "\n", "utf-8")


def _sha(text: str | bytes) -> str:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(raw).hexdigest()[:16]


def run_recipe(config: SeaConfig, edit: SeaEdit) -> EditRecipe:
    """The recipe of the fit: the folder's ``recipe.json`` if any, else the run's.

    The run's recipe applies ``config.evaluate.layers``, ``alpha`` and ``positions`` with the
    fit's site, combine, centring, feature map and energy thresholds.
    """
    if edit.recipe is not None:
        return edit.recipe
    fit_config = edit.manifest.get("config") or {}
    fixed = fit_config.get("fixed_k") is not None
    return EditRecipe(
        layers=config.evaluate.layers,
        alpha=config.evaluate.alpha,
        positions=config.evaluate.positions,
        positive_energy=None if fixed else fit_config.get("positive_energy"),
        negative_energy=None if fixed else fit_config.get("negative_energy"),
        combine=edit.combine,
        site=edit.site,
        centred=edit.centred,
        feature_map={"name": edit.feature_map, "scale": edit.feature_map_scale},
        name="run",
    )


def _orthonormal(d: int, k: int, rng: np.random.Generator) -> torch.Tensor:
    q, r = np.linalg.qr(rng.standard_normal((d, k)))
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return torch.from_numpy((q * signs).astype(np.float32))  # sign fix: a uniform (Haar) draw


def random_control(edit: SeaEdit, number: int) -> SeaEdit:
    """``edit`` with random orthonormal ``U_pos`` / ``U_neg`` of the same shapes per layer.

    Means, site, combine, feature map and recipe are kept, so only the directions differ.

    Args:
        edit: the fitted projections.
        number: which control (seeds ``CONTROL_SEED, number, layer``).
    """
    layers = {}
    for index, proj in edit.layers.items():
        rng = np.random.default_rng([CONTROL_SEED, number, index])
        d = proj.d_model
        layers[index] = LayerProjection(
            layer=index,
            u_pos=_orthonormal(d, int(proj.u_pos.shape[1]), rng),
            u_neg=_orthonormal(d, int(proj.u_neg.shape[1]), rng),
            mean=proj.mean,
        )
    return dataclasses.replace(edit, layers=layers, source=f"{edit.source} (random control)")


def heldout_truthfulqa(config: SeaConfig, notes: list[str]) -> list[Any]:
    """The TruthfulQA questions not among the fit's demonstrations, seeded subset of
    ``evaluate.limit`` (empty, with a note, when the benchmark file is missing)."""
    what = "gate: the effect is not measured and the gate refuses"
    path = task_file(config, "truthfulqa", what, notes)
    if path is None:
        return []
    items = load_truthfulqa_items(path)
    fitted = {" ".join(d.prompt.split()) for d in load_demonstrations(config.data)}
    heldout = [item for item in items if " ".join(item.question.split()) not in fitted]
    if len(heldout) < len(items):
        notes.append(
            f"gate: {len(items) - len(heldout)} TruthfulQA questions are demonstrations of the "
            "fit; left out of the evaluation"
        )
    if not heldout:
        notes.append("gate: no held-out TruthfulQA question; the effect is not measured")
    return subset(heldout, config.evaluate.limit)


def gate_evaluation(
    config: SeaConfig,
    loaded: Any,
    fit_dir: str | Path,
    *,
    progress: bool = True,
    controls: int = N_CONTROLS,
    generation_limit: int | None = 60,
    max_new_tokens: int = 24,
    resamples: int = 10_000,
) -> GateEvaluation:
    """Measure the fit folder's edit for the promotion gate (see the module doc).

    Args:
        config: the run config (data template, ``evaluate`` section, budget).
        loaded: the :class:`~sea_dist.models.LoadedModel` the fit was made on.
        fit_dir: the fit output folder (optionally with ``recipe.json``).
        progress: show a progress bar over the scoring passes.
        controls: random-subspace controls (>= 1).
        generation_limit: built-in questions answered greedily for the answer rate.
        max_new_tokens: tokens per greedy answer.
        resamples: bootstrap resamples of the effect's interval.

    Returns:
        The record, the recipe it was measured with, table rows and notes.

    Raises:
        ConfigError: ``controls < 1``.
        ArtifactError: the fit folder or its recipe is malformed or does not fit the model.
        DataError: the benchmark file is malformed.
    """
    from tqdm.auto import tqdm

    if controls < 1:
        raise ConfigError(expected_found("gate evaluation: controls", "an integer >= 1", controls))
    notes: list[str] = []
    edit = load_edit(str(fit_dir))
    recipe = run_recipe(config, edit)
    edit = dataclasses.replace(edit, recipe=recipe)  # every variant applies the same recipe
    tokenizer, batch = loaded.tokenizer, config.evaluate.batch_size
    template = make_template(config.data, tokenizer)
    items = heldout_truthfulqa(config, notes)
    encoded = None
    if items:
        pairs, layout = truthfulqa_pairs(items, template)
        encoded = EncodedPairs.build(tokenizer, pairs)
    variants: list[tuple[str, SeaEdit | None]] = [("unedited", None), ("edited", edit)]
    variants += [(f"control {i}", random_control(edit, i)) for i in range(controls)]
    capability_notes: list[str] = []
    questions = builtin_questions(config, capability_notes)
    inputs = CapabilityInputs.build(tokenizer, template, generation_limit, demos=questions)
    bar = tqdm(
        total=(len(variants) if encoded else 0) + 2, desc="gate", unit="pass", disable=not progress
    )

    def score(variant: SeaEdit | None) -> SpanScores:
        assert encoded is not None
        if variant is None:
            return encoded.score(loaded.model, batch)
        with apply_edit(loaded, variant) as handle:
            return encoded.score(loaded.model, batch, getattr(handle, "prompt_lengths", None))

    def capability(variant: SeaEdit | None) -> Any:
        handle = apply_edit(loaded, variant) if variant is not None else None
        try:
            generated = handle is not None and handle.positions == "generated"
            return measure_capability(
                loaded,
                batch_size=batch,
                generation_limit=generation_limit,
                max_new_tokens=max_new_tokens,
                inputs=inputs,
                before_batch=handle.prompt_lengths if generated and handle else None,
            )
        finally:
            if handle is not None:
                handle.remove()

    metrics: dict[str, float | None] = {"effect": None, "effect_lo": None, "effect_hi": None}
    rows: list[MetricRow] = []
    fingerprints = {PROJECTIONS_FINGERPRINT: _projections_sha(fit_dir)}
    if encoded is not None:
        spans: dict[str, SpanScores] = {}
        for name, variant in variants:
            bar.set_postfix_str(f"truthfulqa, {name}")
            spans[name] = score(variant)
            bar.update()
        mc = {name: mc_from_logprobs(s.logprob, layout) for name, s in spans.items()}
        names = [name for name, _ in variants[2:]]
        best = max(names, key=lambda name: float(np.mean(mc[name][1])))
        margin = paired_bootstrap(mc["edited"][1], mc[best][1], resamples=resamples)
        _, first = np.unique(encoded.index, return_index=True)  # each distinct answer once
        before, after = spans["unedited"], spans["edited"]
        tokens = before.n_tokens[first]
        total = max(1, int(np.sum(tokens)))
        per_token = (
            float(np.sum(before.logprob[first])) / total,
            float(np.sum(after.logprob[first])) / total,
        )
        n = len(items)
        metrics.update(
            effect=margin.mean,
            effect_lo=margin.low,
            effect_hi=margin.high,
            logprob_per_token_delta=mean_logprob_change_per_token(
                after.logprob[first], before.logprob[first], tokens
            ),
            truthfulqa_n=float(n),
            truthfulqa_mc1_unedited=float(np.mean(mc["unedited"][0])),
            truthfulqa_mc1_edited=float(np.mean(mc["edited"][0])),
            truthfulqa_mc2_unedited=float(np.mean(mc["unedited"][1])),
            truthfulqa_mc2_edited=float(np.mean(mc["edited"][1])),
            truthfulqa_mc2_best_control=float(np.mean(mc[best][1])),
        )
        rows += [
            MetricRow("truthfulqa (held out)", "MC1", *_pair(metrics, "truthfulqa_mc1"), n),
            MetricRow("truthfulqa (held out)", "MC2", *_pair(metrics, "truthfulqa_mc2"), n),
            MetricRow(
                "truthfulqa (held out)",
                f"MC2, best of {controls} random controls",
                float(np.mean(mc["unedited"][1])),
                float(np.mean(mc[best][1])),
                n,
            ),
            MetricRow("truthfulqa (held out)", "log p per answer token", *per_token, n),
        ]
        fingerprints["truthfulqa"] = _sha("\n".join(item.id for item in items))
        notes.append(
            f"gate effect {EFFECT}: {margin.format(4)} (SEA minus the best of {controls} "
            f"random-subspace controls, {best}; paired bootstrap 95% over {n} held-out questions)"
        )
    else:
        metrics["logprob_per_token_delta"] = None
    results = []
    for name, variant in variants[:2]:
        bar.set_postfix_str(f"capability, {name}")
        results.append(capability(variant))
        bar.update()
    bar.close()
    unedited, edited = results
    metrics.update(
        perplexity_ratio=edited.perplexity / unedited.perplexity,
        builtin_accuracy_delta=edited.builtin_accuracy - unedited.builtin_accuracy,
        generation_delta=edited.answer_rate - unedited.answer_rate,
        perplexity_unedited=unedited.perplexity,
        perplexity_edited=edited.perplexity,
        builtin_accuracy_unedited=unedited.builtin_accuracy,
        builtin_accuracy_edited=edited.builtin_accuracy,
        answer_rate_unedited=unedited.answer_rate,
        answer_rate_edited=edited.answer_rate,
    )
    rows += [
        MetricRow(
            f"heldout text (n={len(inputs.heldout)})",
            "perplexity",
            unedited.perplexity,
            edited.perplexity,
            len(inputs.heldout),
        ),
        MetricRow(
            "builtin",
            "accuracy",
            unedited.builtin_accuracy,
            edited.builtin_accuracy,
            len(inputs.builtin.index) // 2,
        ),
        MetricRow(
            "builtin",
            "answer rate (greedy)",
            unedited.answer_rate,
            edited.answer_rate,
            len(inputs.prompts),
        ),
    ]
    fingerprints["heldout_text"] = _sha("\n".join(inputs.heldout))
    fingerprints["builtin"] = _sha("\n".join(inputs.prompts))
    notes += [f"gate: {note}" for note in capability_notes]
    record = EvaluationRecord(
        effect=EFFECT,
        metrics=metrics,
        budget=config.evaluate.budget,
        data_fingerprints=fingerprints,
        source="run",
    )
    for name, value in metrics.items():
        log.debug("gate %s: %s", name, value)  # the pipeline logs one summary line
    return GateEvaluation(record=record, recipe=recipe, rows=tuple(rows), notes=tuple(notes))


def _pair(metrics: dict[str, float | None], stem: str) -> tuple[float, float]:
    before, after = metrics[f"{stem}_unedited"], metrics[f"{stem}_edited"]
    assert before is not None and after is not None
    return before, after


def _projections_sha(fit_dir: str | Path) -> str:
    digest = hashlib.sha256()
    with (Path(fit_dir) / PROJECTIONS_FILE).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def evaluate_for_gate(
    config: SeaConfig, loaded: Any, fit_dir: str | Path, *, progress: bool = True
) -> EvaluationRecord:
    """The evaluation record of the fit folder's edit (see :func:`gate_evaluation`)."""
    return gate_evaluation(config, loaded, fit_dir, progress=progress).record
