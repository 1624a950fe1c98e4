"""lm-evaluation-harness as an evaluation backend: its scores of the unedited and edited model.

lm-eval's ``HFLM`` wraps the model sea-dist already loaded, so lm-eval tokenises, batches and
scores the choices itself, while the edit is applied the sea-dist way: forward hooks
(:func:`sea_dist.edit.apply_edit`) or, with ``folded=True``, the weights ``sea-dist export``
would write (:func:`sea_dist.edit.fold.fold_into`, restored afterwards). The tasks are the offline
definitions of :mod:`sea_dist.evaluate.harness_tasks` over the local TruthfulQA file, so nothing
is downloaded. lm-eval is an optional dependency: ``pip install 'sea-dist[lm-eval]'``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sea_dist.config import SeaConfig
from sea_dist.data import load_truthfulqa_items
from sea_dist.edit import apply_edit, load_edit
from sea_dist.edit.fold import fold_blockers, fold_into
from sea_dist.errors import ArtifactError, ConfigError, DataError, expected_found
from sea_dist.evaluate.harness_tasks import LOCAL_TASKS, QAPrimerTemplate, build_tasks
from sea_dist.evaluate.loglik import model_device
from sea_dist.evaluate.report import MetricRow
from sea_dist.evaluate.runner import subset, task_file
from sea_dist.evaluate.truthfulqa import score_truthfulqa
from sea_dist.models import load_model

log = logging.getLogger(__name__)

HARNESSES = ("lm-eval",)
"""Evaluation backends ``sea-dist evaluate --harness`` accepts."""
DEFAULT_TASKS = LOCAL_TASKS
METRIC_NAMES = {"truthfulqa_mc1": "MC1", "truthfulqa_mc2": "MC2"}


def parse_tasks(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Task names from ``--tasks`` (comma-separated) or a list; default all local tasks.

    Raises:
        ConfigError: an empty list or a task without an offline definition here.
    """
    if text is None:
        return DEFAULT_TASKS
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(part.strip() for part in parts if part.strip()))
    unknown = [name for name in names if name not in LOCAL_TASKS]
    if not names or unknown:
        raise ConfigError(
            expected_found(
                "--tasks",
                f"a comma-separated list of {', '.join(LOCAL_TASKS)}",
                ", ".join(unknown) or repr(text),
                "other lm-eval tasks read the Hugging Face hub, which sea-dist does not contact",
            )
        )
    return names


def require_lm_eval() -> None:
    """Raise a one-line ``ConfigError`` when lm-eval is not installed."""
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise ConfigError(
            expected_found(
                "--harness lm-eval",
                "the lm-eval package",
                "none installed",
                "pip install 'sea-dist[lm-eval]'",
            )
        ) from None


@contextlib.contextmanager
def _quiet_lm_eval() -> Iterator[None]:
    """lm-eval warns about expected things here (a model object instead of a name, custom
    datasets); keep its errors, drop the rest, and give the logger its level back after."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class HarnessScores:
    """lm-eval's scores of one model on the local tasks.

    Attributes:
        means: ``{task: acc}`` as lm-eval aggregates it (MC1 or MC2 mean).
        per_question: ``{task: (n,) float64}`` per-question ``acc``, in the input order.
        n: number of questions.
    """

    means: dict[str, float]
    per_question: dict[str, np.ndarray]
    n: int


def run_lm_eval(
    model: Any,
    tokenizer: Any,
    items: Sequence[Any],
    tasks: Sequence[str] = DEFAULT_TASKS,
    batch_size: int = 8,
) -> HarnessScores:
    """Score ``model`` (with whatever hooks are applied) with lm-eval on local TruthfulQA tasks.

    Args:
        model: a Hugging Face causal LM (torch module), on any device.
        tokenizer: its tokenizer.
        items: TruthfulQA questions (``sea_dist.data.load_truthfulqa_items``, already subset).
        tasks: names from :data:`~sea_dist.evaluate.harness_tasks.LOCAL_TASKS`.
        batch_size: lm-eval's batch size.

    Returns:
        The per-task means and per-question values.

    Raises:
        ConfigError: lm-eval is not installed.
        DataError: no questions.
    """
    require_lm_eval()
    if not items:
        raise DataError(expected_found("lm-eval questions", "at least one", "none"))
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM

    device = str(model_device(model))
    with _quiet_lm_eval():
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)
        task_dict = build_tasks(items, tasks)
        # bootstrap_iters=0: no stderr resampling, which costs more than scoring a small subset
        out = evaluate(lm, task_dict, bootstrap_iters=0, log_samples=True, verbosity="ERROR")
    if out is None:  # only a non-zero distributed rank gets None; we run one process
        raise DataError(expected_found("lm-eval results", "a result dictionary", "None"))
    means = {name: float(out["results"][name]["acc,none"]) for name in tasks}
    per_question = {}
    for name in tasks:
        samples = sorted(out["samples"][name], key=lambda sample: int(sample["doc_id"]))
        per_question[name] = np.asarray([float(s["acc"]) for s in samples], dtype=np.float64)
    return HarnessScores(means, per_question, len(items))


@dataclass(frozen=True)
class Agreement:
    """lm-eval's MC2 next to sea-dist's on the same prompts, candidates and questions.

    Attributes:
        lm_eval_mc2: lm-eval's ``truthfulqa_mc2`` mean.
        sea_dist_mc2: :func:`~sea_dist.evaluate.truthfulqa.score_truthfulqa` mean with
            :class:`~sea_dist.evaluate.harness_tasks.QAPrimerTemplate`.
        max_question_gap: largest per-question ``|lm-eval - sea-dist|`` MC2.
        n: number of questions.
    """

    lm_eval_mc2: float
    sea_dist_mc2: float
    max_question_gap: float
    n: int

    @property
    def gap(self) -> float:
        """``|lm-eval MC2 - sea-dist MC2|`` of the means."""
        return abs(self.lm_eval_mc2 - self.sea_dist_mc2)


def mc2_agreement(
    model: Any, tokenizer: Any, items: Sequence[Any], batch_size: int = 8
) -> Agreement:
    """Score ``items`` with lm-eval's ``truthfulqa_mc2`` and with sea-dist's own scorer.

    Both see lm-eval's prompt (the QA primer) and the same answer sets; any gap comes from
    tokenisation, batching and float rounding.
    """
    harness = run_lm_eval(model, tokenizer, items, ("truthfulqa_mc2",), batch_size)
    own = score_truthfulqa(model, tokenizer, items, QAPrimerTemplate(), batch_size)
    per_question = harness.per_question["truthfulqa_mc2"]
    return Agreement(
        lm_eval_mc2=harness.means["truthfulqa_mc2"],
        sea_dist_mc2=own.mc2_mean,
        max_question_gap=float(np.max(np.abs(per_question - own.mc2))),
        n=len(items),
    )


def check_foldable(edit: Any) -> None:
    """Refuse, in one line with every reason, an edit that cannot be folded into weights.

    Args:
        edit: a :class:`~sea_dist.edit.projections.SeaEdit`.

    Raises:
        ArtifactError: not a linear edit (see ``sea-dist export``); the hooks route still works.
    """
    reasons = fold_blockers(edit)
    if reasons:
        raise ArtifactError(
            f"--folded: expected an edit that folds into the weights, found {'; '.join(reasons)}; "
            "drop --folded to score it with hooks"
        )


@contextlib.contextmanager
def _edited(loaded: Any, edit: Any, config: SeaConfig, folded: bool) -> Iterator[None]:
    layers = config.evaluate.layers
    handle = fold_into(loaded, edit, layers=layers) if folded else apply_edit(loaded, edit, layers)
    try:
        yield
    finally:
        handle.remove()


def harness_before_after(
    config: SeaConfig,
    edit_source: str,
    tasks: Sequence[str] = DEFAULT_TASKS,
    *,
    registry: str | None = None,
    loaded: Any = None,
    folded: bool = False,
) -> tuple[list[MetricRow], list[str]]:
    """lm-eval's scores of the unedited and the edited model, as report rows.

    The questions are the ones sea-dist's own ``truthfulqa`` task scores:
    ``evaluate.truthfulqa_file`` found through the data locations, subset by ``evaluate.limit``
    the same way. The edit uses
    ``evaluate.layers``, as in :func:`~sea_dist.evaluate.runner.evaluate_before_after`.

    Args:
        config: run config (model, evaluate section).
        edit_source: fit folder, artifact folder or registry reference.
        tasks: lm-eval task names (see :func:`parse_tasks`).
        registry: registry URL for a reference like ``name@latest``.
        loaded: an already loaded :class:`~sea_dist.models.LoadedModel` (else loaded here).
        folded: fold the edit into the weights (what ``sea-dist export`` writes) instead of hooks;
            only a linear edit folds.

    Returns:
        Rows ``lm-eval <task>`` (``(folded)`` appended when folded) and notes (a missing data file
        gives no rows and a note, also logged as a warning with the fix).

    Raises:
        ConfigError: lm-eval is not installed or an unknown task.
        ArtifactError: ``folded`` with an edit that does not fold.
    """
    require_lm_eval()
    tasks = parse_tasks(list(tasks))
    edit = load_edit(edit_source, registry=registry)
    if folded:
        check_foldable(edit)
    notes: list[str] = []
    path = task_file(config, "truthfulqa", "lm-eval skipped", notes)
    if path is None:
        return [], notes
    items = subset(load_truthfulqa_items(path), config.evaluate.limit)
    loaded = loaded or load_model(config.model)
    batch = config.evaluate.batch_size
    before = run_lm_eval(loaded.model, loaded.tokenizer, items, tasks, batch)
    with _edited(loaded, edit, config, folded):
        after = run_lm_eval(loaded.model, loaded.tokenizer, items, tasks, batch)
    suffix = " (folded)" if folded else ""
    rows = [
        MetricRow(
            f"lm-eval {name}{suffix}",
            METRIC_NAMES[name],
            before.means[name],
            after.means[name],
            len(items),
        )
        for name in tasks
    ]
    notes.append(
        f"lm-eval rows: offline truthfulqa_mc1/mc2 definitions (QA primer prompt) on "
        f"{path.name}, {len(items)} questions; sea-dist's own rows use the config's template"
    )
    for row in rows:
        log.info("%s %s: %.4f -> %.4f", row.task, row.metric, row.before, row.after)
    return rows, notes
