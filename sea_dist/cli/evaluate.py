"""``sea-dist evaluate``: score the unedited and the edited model on a config's tasks."""

from __future__ import annotations

import argparse
from typing import Any

from sea_dist.cli import environment
from sea_dist.config import load_config, with_overrides
from sea_dist.errors import ConfigError
from sea_dist.evaluate.report import metrics_table


def register(subparsers: Any) -> None:
    """Add ``evaluate`` to the ``sea-dist`` parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score the model before and after applying projections (TruthfulQA, BBQ, ...)",
        description="Load the config's model once, score it unedited and with the projections "
        "applied (forward hooks) on evaluate.tasks, print the before/after table and write a "
        "report with plots into evaluate.out.",
    )
    parser.add_argument("config", help="YAML config (model, data template, evaluate section)")
    parser.add_argument(
        "--artifact",
        default=None,
        help="fit folder, artifact folder or registry reference (name@latest, name@3, "
        "sha256:PREFIX); default: <publish.name>@latest in publish.registry",
    )
    parser.add_argument("--registry", default=None, help="registry URL (default publish.registry)")
    parser.add_argument(
        "--truthfulqa",
        default=None,
        metavar="FILE",
        help="TruthfulQA file to score: a name under truthfulqa/ in the data locations "
        "(TruthfulQA-2.csv: fold 2) or a path (default evaluate.truthfulqa_file)",
    )
    parser.add_argument(
        "--bbq",
        default=None,
        metavar="FILE",
        help="BBQ file to score: a name under bbq/ or a path (default evaluate.bbq_file)",
    )
    parser.add_argument("--limit", type=int, default=None, help="questions per task")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_harness_options(parser)
    parser.set_defaults(handler=_evaluate)


def _add_harness_options(parser: Any) -> None:
    """``--harness/--tasks/--folded``: lm-evaluation-harness rows next to sea-dist's own."""
    parser.add_argument(
        "--harness",
        choices=("lm-eval",),
        default=None,
        help="also score with lm-evaluation-harness (pip install 'sea-dist[lm-eval]'), offline "
        "on the local TruthfulQA file; its rows join the before/after table",
    )
    parser.add_argument(
        "--tasks",
        default=None,
        metavar="LIST",
        help="lm-eval tasks, comma-separated (default truthfulqa_mc1,truthfulqa_mc2)",
    )
    parser.add_argument(
        "--folded",
        action="store_true",
        help="lm-eval scores the edit folded into the weights (what sea-dist export writes) "
        "instead of applied with hooks; only a linear edit folds",
    )


def _evaluate(args: argparse.Namespace) -> int:
    from sea_dist.evaluate.runner import evaluate_before_after

    config = environment.anchor_outputs_from_environment(
        environment.apply_environment(load_config(args.config))
    )
    overrides = {
        key: value
        for key, value in (
            ("limit", args.limit),
            ("truthfulqa_file", args.truthfulqa),
            ("bbq_file", args.bbq),
        )
        if value is not None
    }
    if overrides:
        config = with_overrides(config, evaluate=overrides)
    source = args.artifact or f"{config.publish.name}@latest"
    registry = environment.anchored_from_environment(
        args.registry or config.publish.registry, "--registry"
    )
    loaded = None
    if not args.harness and (args.tasks is not None or args.folded):
        raise ConfigError(
            "--tasks/--folded: expected them with --harness lm-eval, found no --harness; "
            "add --harness lm-eval"
        )
    if args.harness:  # check the extra and the task names before loading anything
        from sea_dist.evaluate.harness import parse_tasks, require_lm_eval
        from sea_dist.models import load_model

        require_lm_eval()
        tasks = parse_tasks(args.tasks)
        if args.folded:
            from sea_dist.edit import load_edit
            from sea_dist.evaluate.harness import check_foldable

            check_foldable(load_edit(source, registry=registry))
        loaded = load_model(config.model)
    metrics, notes = evaluate_before_after(
        config, source, registry=registry, loaded=loaded, progress=not args.no_progress
    )
    if args.harness:
        from sea_dist.evaluate.harness import harness_before_after

        rows, harness_notes = harness_before_after(
            config, source, tasks, registry=registry, loaded=loaded, folded=args.folded
        )
        metrics, notes = [*metrics, *rows], [*notes, *harness_notes]
    print(metrics_table(metrics))
    for note in notes:
        print(f"note: {note}")
    return 0
