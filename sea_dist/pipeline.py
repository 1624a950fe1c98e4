"""The main job: collect -> fit -> publish -> evaluate -> report, for one config.

``sea-dist run CONFIG`` and ``jobs/pipeline.py`` both call :func:`run_pipeline`. Every stage is
idempotent on its inputs: collection resumes a compatible store, the fit folder is rewritten,
publishing adds a new immutable version, evaluation reads the just-published artifact.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from sea_dist.config import SeaConfig, config_to_dict
from sea_dist.evaluate.report import MetricRow, metrics_table

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """What a pipeline run produced."""

    store_url: str
    fit_dir: str
    artifact_ref: str
    registry: str
    metrics: list[MetricRow] = field(default_factory=list)
    report: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """Human-readable multi-line summary."""
        stages = ", ".join(f"{k} {v:.0f}s" for k, v in self.seconds.items())
        lines = [
            f"artifact: {self.artifact_ref} (registry {self.registry})",
            f"store: {self.store_url}    fit: {self.fit_dir}",
            f"time: {stages}",
        ]
        if self.metrics:
            lines += ["", metrics_table(self.metrics)]
        if self.report:
            lines += ["", f"report: {self.report}"]
        return "\n".join(lines)


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
        evaluate: score the unedited and edited model on ``config.evaluate.tasks``.
        progress: show progress bars.

    Raises:
        SeaDistError: any stage refused its input (message says which and how to fix).
    """
    from sea_dist.artifacts.registry import Registry
    from sea_dist.collect.cluster import init_ray
    from sea_dist.collect.driver import collect
    from sea_dist.fit import fit_store
    from sea_dist.schedule.fingerprint import compute_input_fingerprint

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

    start = time.perf_counter()
    log.info("stage 3/4 publish -> %s", config.publish.registry)
    registry = Registry(config.publish.registry)
    resolved = registry.publish(
        config.fit.out,
        config.publish.name,
        aliases=config.publish.aliases,
        config=config_to_dict(config),
        input_fingerprint=compute_input_fingerprint(config),
    )
    ref = f"{config.publish.name}@{resolved.version}"
    seconds["publish"] = time.perf_counter() - start
    log.info("published %s", ref)

    metrics: list[MetricRow] = []
    notes: list[str] = []
    if evaluate and config.evaluate.tasks:
        from sea_dist.evaluate.runner import evaluate_before_after

        start = time.perf_counter()
        log.info("stage 4/4 evaluate %s", ", ".join(config.evaluate.tasks))
        metrics, notes = evaluate_before_after(config, config.fit.out, progress=progress)
        seconds["evaluate"] = time.perf_counter() - start

    from sea_dist.evaluate.report import write_report

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
    )
