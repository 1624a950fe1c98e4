"""``sea-dist evaluate``: score the unedited and the edited model on a config's tasks."""

from __future__ import annotations

import argparse
from typing import Any


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
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from sea_dist.config import load_config, with_overrides
    from sea_dist.evaluate.report import metrics_table
    from sea_dist.evaluate.runner import evaluate_before_after
    from sea_dist.outputs import anchor_outputs, anchored

    config = anchor_outputs(load_config(args.config))
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
    registry = anchored(args.registry or config.publish.registry, "--registry")
    metrics, notes = evaluate_before_after(
        config, source, registry=registry, progress=not args.no_progress
    )
    print(metrics_table(metrics))
    for note in notes:
        print(f"note: {note}")
    return 0
