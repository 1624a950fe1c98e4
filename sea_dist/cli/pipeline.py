"""The main job: collect -> fit -> evaluate -> publish -> promote through the gate, for one config.

``sea-dist run CONFIG`` and ``jobs/pipeline.py`` (what scheduled refits submit) both call
:func:`run_pipeline`. Every stage is idempotent on its inputs: collection resumes a compatible
store, the fit folder is rewritten, evaluation measures the fit folder, publishing adds a new
immutable version that carries the recipe and the evaluation record, and each configured alias
moves only through the promotion gate (:mod:`sea_dist.registry.gate`). A refused alias is not an
error: the version stays published, the alias stays where it was, and the summary says
``gate: <alias> not moved to <name@v>: <reasons>``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sea_dist.cli.cluster import init_ray
from sea_dist.cli.environment import anchor_outputs_from_environment, apply_environment
from sea_dist.config import SeaConfig, config_to_dict
from sea_dist.evaluate.report import MetricRow, metrics_table, write_report
from sea_dist.format.recipe import EditRecipe, EvaluationRecord, gate_failures
from sea_dist.preflight import check_run_preconditions

if TYPE_CHECKING:
    from sea_dist.registry.gate import PromotionResult

log = logging.getLogger(__name__)

GATE_TASKS = ("truthfulqa", "builtin")
"""Tasks the gate evaluation already measures (held-out TruthfulQA, built-in accuracy): the
before/after runner scores only the others (``bbq``)."""


def gate_summary(record: EvaluationRecord | None) -> str:
    """``gate record: <effect> <value> [<lo>, <hi>]: pass`` (or FAIL and the reasons)."""
    reasons = gate_failures(record)
    if record is None:
        return f"gate record: none ({reasons[0]})"
    value, low, high = (record.metrics.get(k) for k in ("effect", "effect_lo", "effect_hi"))
    shown = "not measured" if value is None else f"{value:+.4f}"
    if value is not None and low is not None and high is not None:
        shown += f" [{low:+.4f}, {high:+.4f}]"
    verdict = "pass" if not reasons else f"FAIL ({'; '.join(reasons)})"
    return f"gate record: {record.effect} {shown}: {verdict}"


@dataclass
class PipelineResult:
    """What a pipeline run produced.

    Attributes:
        evaluation: the version's evaluation record (None with ``evaluate=False``).
        recipe: the recipe published with the version.
        promotions: one result per configured alias (``moved`` False: the gate refused).
    """

    store_url: str
    fit_dir: str
    artifact_ref: str
    registry: str
    metrics: list[MetricRow] = field(default_factory=list)
    report: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    evaluation: EvaluationRecord | None = None
    recipe: EditRecipe | None = None
    promotions: list[PromotionResult] = field(default_factory=list)

    def summary(self) -> str:
        """Human-readable multi-line summary."""
        stages = ", ".join(f"{k} {v:.0f}s" for k, v in self.seconds.items())
        lines = [
            f"artifact: {self.artifact_ref} (registry {self.registry})",
            f"store: {self.store_url}    fit: {self.fit_dir}",
            f"time: {stages}",
            gate_summary(self.evaluation),
            *[p.line() for p in self.promotions],
        ]
        if self.metrics:
            lines += ["", metrics_table(self.metrics)]
        if self.report:
            lines += ["", f"report: {self.report}"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON data for job results."""
        return {
            "artifact": self.artifact_ref,
            "registry": self.registry,
            "store": self.store_url,
            "fit_dir": self.fit_dir,
            "report": self.report,
            "metrics": [
                {"task": m.task, "metric": m.metric, "before": m.before, "after": m.after}
                for m in self.metrics
            ],
            "evaluation": self.evaluation.to_dict() if self.evaluation else None,
            "promotions": [p.to_dict() for p in self.promotions],
        }


def run_pipeline(
    config: SeaConfig,
    *,
    overwrite_store: bool = False,
    evaluate: bool = True,
    progress: bool = True,
) -> PipelineResult:
    """Run every stage for ``config`` and return what was produced.

    Args:
        config: the validated run config.
        overwrite_store: replace an incompatible existing store instead of refusing it.
        evaluate: measure the fit for the gate (held-out TruthfulQA against random controls,
            damage) and score the other ``config.evaluate.tasks``; without it the version is
            published unevaluated, so gated aliases do not move.
        progress: show progress bars.

    Raises:
        SeaDistError: any stage refused its input (message says which and how to fix).
    """
    from sea_dist.collect.driver import collect
    from sea_dist.fit import fit_store
    from sea_dist.registry.filesystem import Registry
    from sea_dist.schedule.fingerprint import compute_input_fingerprint

    # The settings the environment gives (model and data caches, data folder, mirror) travel in
    # the config to the collectors; every output absolute against $SEA_DIST_OUTPUT_BASE, none
    # inside a Ray job's temporary working-directory copy.
    config = anchor_outputs_from_environment(apply_environment(config))
    # refuse what can be refused before a cluster starts (jobs and scheduled runs included)
    check_run_preconditions(config, evaluate=evaluate, overwrite_store=overwrite_store)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    log.info("stage 1/4 collect -> %s", config.store.url)
    init_ray(config.collect.ray_address)
    collect(config, overwrite=overwrite_store, progress=progress)
    seconds["collect"] = time.perf_counter() - start

    start = time.perf_counter()
    log.info("stage 2/4 fit -> %s", config.fit.out)
    fit_store(config.store.url, config.fit, out=config.fit.out, overwrite=True, progress=progress)
    seconds["fit"] = time.perf_counter() - start

    metrics: list[MetricRow] = []
    notes: list[str] = []
    evaluation: EvaluationRecord | None = None
    if evaluate:
        start = time.perf_counter()
        log.info("stage 3/4 evaluate %s for the gate", config.fit.out)
        evaluation, recipe, metrics, notes = _evaluate(config, progress)
        seconds["evaluate"] = time.perf_counter() - start
        log.info("evaluate: %s", gate_summary(evaluation))
    else:
        from sea_dist.edit import load_edit
        from sea_dist.evaluate.gate_record import run_recipe

        recipe = run_recipe(config, load_edit(config.fit.out))
        notes.append("not evaluated (--no-evaluate): gated aliases do not move")

    start = time.perf_counter()
    log.info("stage 4/4 publish -> %s", config.publish.registry)
    registry = Registry(config.publish.registry)
    resolved = registry.publish(
        config.fit.out,
        config.publish.name,
        config=config_to_dict(config),
        input_fingerprint=compute_input_fingerprint(config),
        recipe=recipe,
        evaluation=evaluation,
    )
    ref = resolved.ref
    promotions = [
        registry.promote(
            config.publish.name,
            resolved.version,
            alias,
            gated_aliases=config.publish.gated_aliases,
        )
        for alias in config.publish.aliases
    ]
    seconds["publish"] = time.perf_counter() - start
    notes += [p.line() for p in promotions]

    report = write_report(
        Path(config.evaluate.out), config.fit.out, metrics, artifact_ref=ref, notes=notes
    )
    return PipelineResult(
        store_url=config.store.url,
        fit_dir=config.fit.out,
        artifact_ref=ref,
        registry=config.publish.registry,
        metrics=metrics,
        report=str(report),
        seconds=seconds,
        evaluation=evaluation,
        recipe=recipe,
        promotions=promotions,
    )


def _evaluate(
    config: SeaConfig, progress: bool
) -> tuple[EvaluationRecord, EditRecipe, list[MetricRow], list[str]]:
    """The gate evaluation of the fit folder, plus the before/after rows of the other tasks.

    ``recipe.json`` and ``evaluation.json`` are written into the fit folder, so a later
    ``sea-dist publish`` of it carries them too.
    """
    from sea_dist.evaluate.gate_record import gate_evaluation
    from sea_dist.models import load_model

    loaded = load_model(config.model)
    gate = gate_evaluation(config, loaded, config.fit.out, progress=progress)
    gate.write(config.fit.out)
    rows, notes = list(gate.rows), list(gate.notes)
    others = tuple(t for t in config.evaluate.tasks if t not in GATE_TASKS)
    if others:
        from sea_dist.evaluate.runner import evaluate_before_after

        narrowed = dataclasses.replace(
            config, evaluate=dataclasses.replace(config.evaluate, tasks=others)
        )
        more, more_notes = evaluate_before_after(
            narrowed, config.fit.out, loaded=loaded, progress=progress
        )
        rows += [r for r in more if not r.task.startswith("heldout text")]  # measured above
        notes += more_notes
    notes.append(gate_summary(gate.record))
    return gate.record, gate.recipe, rows, notes
