"""``sea-dist evaluate``: score the unedited and the edited model on a config's tasks."""

from __future__ import annotations

import argparse
from pathlib import Path
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
    parser.add_argument("--limit", type=int, default=None, help="questions per task")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(handler=_evaluate)

    twofold = subparsers.add_parser(
        "twofold",
        help="two-fold TruthfulQA study: settings x controls, bootstrap CIs, BBQ for the best",
        description="Fit SEA on TruthfulQA fold 1 and score MC1/MC2 on fold 2, then swap, for "
        "every setting of the grid (site, centring, combine, last-L, Phi-SEA, first token) and "
        "for its controls (random subspaces with the same k per layer, roles swapped), next to "
        "the unedited model on the same questions; then BBQ two-fold for the best setting. "
        "Writes twofold.md, twofold.json and plots into --out; recordings and scores are cached "
        "there, so an interrupted study resumes. Runs in one process on the config's device.",
    )
    twofold.add_argument("config", help="YAML config (model, data, collect, fit, evaluate)")
    twofold.add_argument("--out", default=None, help="output folder (default evaluate.out)")
    twofold.add_argument(
        "--settings", default=None, help="comma-separated setting names (default: all)"
    )
    twofold.add_argument("--list-settings", action="store_true", help="print the grid and exit")
    twofold.add_argument("--seeds", type=int, default=3, help="random-control seeds (default 3)")
    twofold.add_argument("--limit", type=int, default=None, help="questions per fold (smoke runs)")
    twofold.add_argument(
        "--bbq",
        default="best",
        help="BBQ two-fold for this setting, 'best' (default) or 'none'",
    )
    twofold.add_argument("--bbq-limit", type=int, default=None, help="BBQ rows per fold")
    twofold.add_argument(
        "--batch-size", type=int, default=None, help="scoring batch (default evaluate.batch_size)"
    )
    twofold.add_argument("--device", default=None, help="override model.device (cpu, cuda, auto)")
    twofold.add_argument("--no-progress", action="store_true", help="hide progress bars")
    twofold.set_defaults(handler=_twofold)


def _evaluate(args: argparse.Namespace) -> int:
    from sea_dist.config import load_config, with_overrides
    from sea_dist.evaluate.report import metrics_table
    from sea_dist.evaluate.runner import evaluate_before_after

    config = load_config(args.config)
    if args.limit is not None:
        config = with_overrides(config, evaluate={"limit": args.limit})
    source = args.artifact or f"{config.publish.name}@latest"
    registry = args.registry or config.publish.registry
    metrics, notes = evaluate_before_after(
        config, source, registry=registry, progress=not args.no_progress
    )
    print(metrics_table(metrics))
    for note in notes:
        print(f"note: {note}")
    return 0


def _twofold(args: argparse.Namespace) -> int:
    from sea_dist.config import load_config, with_overrides
    from sea_dist.errors import ConfigError, expected_found
    from sea_dist.evaluate.settings import DEFAULT_GRID, select_settings
    from sea_dist.evaluate.twofold import TwofoldOptions, run_twofold

    if args.list_settings:
        for setting in DEFAULT_GRID:
            print(f"{setting.name:22s} {setting.description}")
        return 0
    for name in ("seeds", "limit", "bbq_limit", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(expected_found(flag, "a positive integer", value))
    config = load_config(args.config)
    if args.device is not None:
        config = with_overrides(config, model={"device": args.device})
    names = [n.strip() for n in args.settings.split(",") if n.strip()] if args.settings else None
    options = TwofoldOptions(
        settings=tuple(select_settings(names)),
        seeds=args.seeds,
        limit=args.limit,
        batch_size=args.batch_size or config.evaluate.batch_size,
        bbq=None if args.bbq == "none" else args.bbq,
        bbq_limit=args.bbq_limit,
    )
    out = args.out or config.evaluate.out
    summary = run_twofold(config, out, options, progress=not args.no_progress)
    best = next(row for row in summary["settings"] if row["name"] == summary["best"])
    base = summary["unedited"]
    print(
        f"unedited MC1 {base['mc1']:.3f} MC2 {base['mc2']:.3f}; best margin: {best['name']} "
        f"MC2 {best['mc2']:.3f} (margin over controls {best['margin_mc2']:+.3f})"
    )
    print(f"report: {Path(out) / 'twofold.md'}")
    return 0
