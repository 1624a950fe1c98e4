"""``sea-dist tune`` (held-out, damage-budgeted choice of an edit, :mod:`.tune`) and
``sea-dist twofold`` (the two-fold TruthfulQA study of a grid, :mod:`.twofold`)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from sea_dist.cli.environment import anchored_from_environment, apply_environment
from sea_dist.config import with_overrides
from sea_dist.errors import ConfigError, expected_found
from sea_dist.studies.options import load_study_config, tune_options_from_dict
from sea_dist.studies.space import select
from sea_dist.studies.twofold_options import twofold_options_from_dict


def register(subparsers: Any) -> None:
    """Add the ``tune`` and ``twofold`` subcommands."""
    parser = subparsers.add_parser(
        "tune",
        help="choose an edit on held-out data under a damage budget, then test it once",
        description="Fit SEA on part of a TruthfulQA dev fold, score every setting of the search "
        "space (tune.space in the YAML) on the rest next to its controls (roles swapped, random "
        "subspaces with the same k), choose the best validation margin inside the damage budget "
        "(tune.budget) by successive halving, then score the chosen setting and the presets "
        "once on the test fold. Writes tune.md, tune.json, tune_pareto.png, recipe.json and "
        "evaluation.json into --out; scores are cached there, so an interrupted tune resumes.",
    )
    parser.add_argument("config", help="YAML config with a tune: section (jobs/configs/tune.yaml)")
    parser.add_argument("--out", default=None, help="output folder (default evaluate.out)")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="wall-clock budget of the search in minutes (default tune.budget_minutes)",
    )
    parser.add_argument("--settings", default=None, help="comma-separated subset of the space")
    parser.add_argument("--list-settings", action="store_true", help="print the space and exit")
    parser.add_argument("--dev-limit", type=int, default=None, help="dev questions (smoke runs)")
    parser.add_argument("--test-limit", type=int, default=None, help="test questions")
    parser.add_argument("--device", default=None, help="override model.device (cpu, cuda, auto)")
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per forward")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(handler=_tune)
    _register_twofold(subparsers)


def _tune(args: argparse.Namespace) -> int:
    from sea_dist.studies.tune_run import run_tune

    config, raw = load_study_config(args.config, "tune")
    config = apply_environment(config)
    options = tune_options_from_dict(raw)
    if args.list_settings:
        for setting in options.space:
            print(f"{setting.name:32s} {setting.axes()}")
        return 0
    changes: dict[str, Any] = {}
    if args.settings:
        names = [n.strip() for n in args.settings.split(",") if n.strip()]
        changes["space"] = tuple(select(options.space, names))
    for name in ("budget_minutes", "dev_limit", "test_limit", "batch_size"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    options = dataclasses.replace(options, **changes)  # re-validated in __post_init__
    if args.device is not None:
        config = with_overrides(config, model={"device": args.device})
    out = Path(anchored_from_environment(args.out or config.evaluate.out, "--out"))
    summary = run_tune(config, options, out, progress=not args.no_progress)
    chosen = summary["chosen"]
    print(f"chosen: {chosen if chosen else 'none (no setting stays inside the damage budget)'}")
    for name, row in summary["test"].items():
        verdict = "passes" if row["evaluation"]["passed"] else "fails"
        reasons = "; ".join(row["evaluation"]["reasons"])
        print(
            f"test {name}: MC2 {row['mc2']:.3f} (unedited {row['unedited_mc2']:.3f}), margin "
            f"{row['margin']:+.4f}, ppl ratio {row['perplexity_ratio']:.3f}: gate {verdict}"
            + (f" ({reasons})" if reasons else "")
        )
    print(f"report: {out / 'tune.md'}")
    print(summary["result"])
    return 0


def _register_twofold(subparsers: Any) -> None:
    twofold = subparsers.add_parser(
        "twofold",
        help="two-fold TruthfulQA study: settings x controls, bootstrap CIs, BBQ for the best",
        description="Fit SEA on TruthfulQA fold 1 and score MC1/MC2 on fold 2, then swap, for "
        "every setting of the grid (twofold.settings in the YAML, in the space syntax of "
        "tune; default: site, centring, combine, last-L, Phi-SEA, first token) and for its "
        "controls (random subspaces with the same k per layer, roles swapped), next to the "
        "unedited model on the same questions; then BBQ two-fold for the best setting. "
        "Writes twofold.md, twofold.json and plots into --out; recordings and scores are cached "
        "there, so an interrupted study resumes. Runs in one process on the config's device.",
    )
    twofold.add_argument(
        "config", help="YAML config (model, data, collect, evaluate; optional twofold section)"
    )
    twofold.add_argument("--out", default=None, help="output folder (default evaluate.out)")
    twofold.add_argument(
        "--settings", default=None, help="comma-separated setting names (default: all)"
    )
    twofold.add_argument("--list-settings", action="store_true", help="print the grid and exit")
    twofold.add_argument(
        "--seeds", type=int, default=None, help="random-control seeds (default twofold.seeds, 3)"
    )
    twofold.add_argument("--limit", type=int, default=None, help="questions per fold (smoke runs)")
    twofold.add_argument(
        "--bbq",
        default=None,
        help="BBQ two-fold for this setting, 'best' or 'none' (default twofold.bbq, best)",
    )
    twofold.add_argument("--bbq-limit", type=int, default=None, help="BBQ rows per fold")
    twofold.add_argument(
        "--batch-size", type=int, default=None, help="scoring batch (default evaluate.batch_size)"
    )
    twofold.add_argument("--device", default=None, help="override model.device (cpu, cuda, auto)")
    twofold.add_argument("--no-progress", action="store_true", help="hide progress bars")
    twofold.set_defaults(handler=_twofold)


def _twofold(args: argparse.Namespace) -> int:
    from sea_dist.studies.twofold import run_twofold

    config, raw = load_study_config(args.config, "twofold")
    config = apply_environment(config)
    options = twofold_options_from_dict(raw, config)
    if args.list_settings:
        for setting in options.settings:
            print(f"{setting.name:24s} {setting.description or setting.axes()}")
        return 0
    changes: dict[str, Any] = {}
    for name in ("seeds", "limit", "bbq_limit", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(expected_found(flag, "a positive integer", value))
        if value is not None:
            changes[name] = value
    if args.settings:
        names = [n.strip() for n in args.settings.split(",") if n.strip()]
        changes["settings"] = tuple(select(options.settings, names))
    if args.bbq is not None:
        changes["bbq"] = None if args.bbq == "none" else args.bbq
    options = dataclasses.replace(options, **changes)
    if args.device is not None:
        config = with_overrides(config, model={"device": args.device})
    out = anchored_from_environment(args.out or config.evaluate.out, "--out")
    summary = run_twofold(config, out, options, progress=not args.no_progress)
    best = next(row for row in summary["settings"] if row["name"] == summary["best"])
    base = summary["unedited"]
    print(
        f"unedited MC1 {base['mc1']:.3f} MC2 {base['mc2']:.3f}; best margin: {best['name']} "
        f"MC2 {best['mc2']:.3f} (margin over controls {best['margin_mc2']:+.3f})"
    )
    print(f"report: {Path(out) / 'twofold.md'}")
    return 0
