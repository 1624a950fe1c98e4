"""Before/after evaluation of one set of projections on the tasks of an :class:`EvaluateConfig`.

The same questions are scored by the unedited model and by the model under
:func:`sea_dist.edit.apply_edit`; the model is loaded once. Tasks:

- ``truthfulqa``: MC1 / MC2 on TruthfulQA (``<data_dir>/truthfulqa/TruthfulQA.csv``);
- ``bbq``: answer accuracy on the BBQ validation rows;
- ``builtin``: two-choice accuracy (true vs false answer) on the built-in factual questions, a
  capability check; when the projections were fitted on those same questions it is in-sample,
  and the notes say so.

Perplexity on the shipped held-out text is always reported, so damage to the model shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sea_dist.config import SeaConfig
from sea_dist.data import (
    load_bbq_items,
    load_builtin_demonstrations,
    load_heldout_demonstrations,
    load_heldout_text,
    load_truthfulqa_items,
    make_template,
)
from sea_dist.data.locate import find_or_fetch_benchmark_file, missing_data_hint
from sea_dist.edit import apply_edit, load_edit
from sea_dist.errors import DataError
from sea_dist.evaluate.bbq import score_bbq
from sea_dist.evaluate.loglik import score_completions
from sea_dist.evaluate.perplexity import perplexity
from sea_dist.evaluate.report import MetricRow
from sea_dist.evaluate.truthfulqa import score_truthfulqa
from sea_dist.models import load_model

log = logging.getLogger(__name__)

Scorer = Callable[[Any], list[tuple[str, float]]]


def subset(items: Sequence[Any], limit: int | None, seed: int = 0) -> list[Any]:
    """A deterministic random subset of ``limit`` items (all, in order, when ``limit`` is None).

    The benchmark files are sorted by type and category, so the first rows are not representative.
    """
    if limit is None or limit >= len(items):
        return list(items)
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return [items[i] for i in chosen]


BBQ_FILE = "bbq/bbq-validation-disambig.jsonl"
TASK_FOLDERS = {"truthfulqa": "truthfulqa", "bbq": "bbq"}


def task_file(config: SeaConfig, task: str, what: str, notes: list[str]) -> Path | None:
    """The file ``evaluate.<task>_file`` names, or None (said on the console and in ``notes``).

    A bare file name is looked up below ``<task>/`` in the data locations (see
    :func:`benchmark_file`); anything with a folder in it is a path, used as given.
    """
    name = getattr(config.evaluate, f"{task}_file")
    if Path(name).name != name:  # a path: exactly this file, no lookup
        path = Path(name).expanduser()
        if path.is_file():
            return path
        hint = f"evaluate.{task}_file: expected a file, found no file at {str(path)!r}"
        log.warning("%s: %s", what, hint)
        notes.append(f"{what}: {hint}")
        return None
    relative = f"{TASK_FOLDERS[task]}/{name}"
    found = benchmark_file(config, relative)
    if found is None:
        missing_benchmark(relative, what, notes)
    return found


def benchmark_file(config: SeaConfig, relative: str) -> Path | None:
    """Where a benchmark file is found: ``evaluate.data_dir``, ``data.data_dir``, the data
    cache, ``../shared/data``, else a download of its pinned source into the cache
    (:func:`sea_dist.data.locate.find_or_fetch_benchmark_file`); None if none works."""
    return find_or_fetch_benchmark_file(relative, config.evaluate.data_dir, data=config.data)


def benchmark_file_or_raise(config: SeaConfig, relative: str) -> Path:
    """:func:`benchmark_file`, or a one-line ``DataError`` naming the command that fetches it."""
    path = benchmark_file(config, relative)
    if path is None:
        raise DataError(missing_data_hint(relative, data=config.data))
    return path


def missing_benchmark(relative: str, what: str, notes: list[str]) -> None:
    """Say on the console (not only in the report) that ``relative`` is missing, and the fix."""
    hint = missing_data_hint(relative)
    log.warning("%s: %s", what, hint)
    notes.append(f"{what}: {hint}")


def builtin_questions(config: SeaConfig, notes: list[str]) -> list[Any]:
    """The built-in questions to score: the part ``data.holdout`` kept out of the fit when the
    fit used them, else all of them (with a note when that makes the accuracy in-sample)."""
    if config.data.source != "builtin":
        return load_builtin_demonstrations()
    held = load_heldout_demonstrations(config.data)
    if held:
        notes.append(
            f"builtin accuracy is held out: {len(held)} built-in questions kept out of the fit "
            f"(data.holdout {config.data.holdout})"
        )
        return held
    notes.append(
        "builtin accuracy is in-sample: the projections were fitted on it (set data.holdout)"
    )
    return load_builtin_demonstrations()


def _scorers(config: SeaConfig, tokenizer: Any, notes: list[str]) -> dict[str, Scorer]:
    """Prepare each task's items once; each scorer maps a model to ``[(metric, value)]``."""
    template = make_template(config.data, tokenizer)
    batch = config.evaluate.batch_size
    limit = config.evaluate.limit
    scorers: dict[str, Scorer] = {}
    for task in config.evaluate.tasks:
        if task == "truthfulqa":
            path = task_file(config, "truthfulqa", "truthfulqa skipped", notes)
            if path is None:
                continue
            tqa = subset(load_truthfulqa_items(path), limit)

            def truthfulqa(model: Any, items: list[Any] = tqa) -> list[tuple[str, float]]:
                scores = score_truthfulqa(model, tokenizer, items, template, batch)
                return [("MC1", scores.mc1_mean), ("MC2", scores.mc2_mean)]

            scorers[f"truthfulqa (n={len(tqa)})"] = truthfulqa
        elif task == "bbq":
            path = task_file(config, "bbq", "bbq skipped", notes)
            if path is None:
                continue
            bbq_items = subset(load_bbq_items(path), limit)

            def bbq(model: Any, items: list[Any] = bbq_items) -> list[tuple[str, float]]:
                scores = score_bbq(model, tokenizer, items, template, batch)
                return [("accuracy", scores.accuracy)]

            scorers[f"bbq (n={len(bbq_items)})"] = bbq
        elif task == "builtin":
            demos = subset(builtin_questions(config, notes), limit)
            pairs = [
                (template.render(d.prompt), template.completion(answer))
                for d in demos
                for answer in (d.positive, d.negative)
            ]

            def builtin(
                model: Any, pairs: list[tuple[str, str]] = pairs
            ) -> list[tuple[str, float]]:
                logprob = score_completions(model, tokenizer, pairs, batch).logprob
                true, false = logprob[0::2], logprob[1::2]
                return [("accuracy", float(np.mean(true > false)))]

            scorers[f"builtin (n={len(demos)})"] = builtin
    texts = load_heldout_text()

    def heldout(model: Any) -> list[tuple[str, float]]:
        return [("perplexity", perplexity(model, tokenizer, texts, batch).perplexity)]

    scorers[f"heldout text (n={len(texts)})"] = heldout
    return scorers


def evaluate_before_after(
    config: SeaConfig,
    edit_source: str,
    *,
    registry: str | None = None,
    loaded: Any = None,
    progress: bool = True,
) -> tuple[list[MetricRow], list[str]]:
    """Score the unedited and the edited model on the configured tasks.

    Args:
        config: run config (model, data template, evaluate section).
        edit_source: fit folder, artifact folder or registry reference of the projections.
        registry: registry URL for a reference like ``name@latest``.
        loaded: an already loaded :class:`~sea_dist.models.LoadedModel` (else loaded here).
        progress: show a progress bar over (task, variant) pairs.

    Returns:
        Metric rows (same order as the tasks) and notes for the report.
    """
    from tqdm.auto import tqdm

    loaded = loaded or load_model(config.model)
    edit = load_edit(edit_source, registry=registry)
    notes: list[str] = []
    scorers = _scorers(config, loaded.tokenizer, notes)
    before: dict[str, list[tuple[str, float]]] = {}
    after: dict[str, list[tuple[str, float]]] = {}
    bar = tqdm(total=2 * len(scorers), desc="evaluate", unit="task", disable=not progress)
    for name, scorer in scorers.items():
        bar.set_postfix_str(f"{name}, unedited")
        before[name] = scorer(loaded.model)
        bar.update()
        bar.set_postfix_str(f"{name}, edited")
        with apply_edit(loaded, edit, layers=config.evaluate.layers):
            after[name] = scorer(loaded.model)
        bar.update()
    bar.close()
    rows = []
    for name in scorers:
        task, _, count = name.partition(" (n=")
        for (metric, value_before), (_, value_after) in zip(before[name], after[name]):
            rows.append(MetricRow(task, metric, value_before, value_after, int(count[:-1])))
    for row in rows:
        log.info("%s %s: %.4f -> %.4f", row.task, row.metric, row.before, row.after)
    return rows, notes
