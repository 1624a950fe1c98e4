"""``run_tune``: the tuning protocol end to end (the folds, the search, the test, the report).

The steps themselves are :class:`sea_dist.studies.tune.Tune`'s; this module reads the folds,
runs successive halving on the dev fold, evaluates the chosen setting and the presets once on
the test fold and writes ``tune.md`` / ``tune.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sea_dist.config import SeaConfig
from sea_dist.data import load_truthfulqa_items
from sea_dist.errors import ConfigError, expected_found
from sea_dist.evaluate.runner import benchmark_file_or_raise, subset
from sea_dist.models import load_model
from sea_dist.studies.fits import check_space
from sea_dist.studies.options import TuneOptions
from sea_dist.studies.selection import successive_halving
from sea_dist.studies.space import PRESETS
from sea_dist.studies.tune import Tune
from sea_dist.studies.tune_report import summarise, write_tune_report

log = logging.getLogger(__name__)


def run_tune(
    config: SeaConfig,
    options: TuneOptions,
    out: str | Path,
    *,
    loaded: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the tuning protocol (module doc) and write ``tune.md``, ``tune.json`` and plots.

    Returns:
        The summary written to ``tune.json``.
    """
    folds = (options.dev, options.test)
    files = [benchmark_file_or_raise(config, f"truthfulqa/{name}") for name in folds]
    if files[0].resolve() == files[1].resolve():
        raise ConfigError(expected_found("tune.test", "a file other than tune.dev", options.test))
    dev = subset(load_truthfulqa_items(files[0]), options.dev_limit, options.seed)
    test = subset(load_truthfulqa_items(files[1]), options.test_limit, options.seed)
    presets = [PRESETS[name] for name in options.presets]
    loaded = loaded or load_model(config.model)
    check_space([*options.space, *presets], loaded.n_layers)
    out = Path(out)
    tune = Tune(config, options, loaded, out, progress)
    tune.prepare(dev, test, [*options.space, *presets])
    tune.record([*options.space, *presets])

    chosen, trials = successive_halving(tune, options.space)
    log.info("chosen: %s", chosen.name if chosen else "none inside the budget")
    # The test fold is read from here on, and only here.
    tested: dict[str, dict[str, Any]] = {}
    for setting in ([chosen] if chosen else []) + presets:
        if setting.name not in tested:
            log.info("test fold: %s", setting.name)
            tested[setting.name] = tune.evaluate_test(setting)
    prompts = [tune.template.render(item.question) for item in test[: options.report_prompts]]
    generations = {"prompts": [item.question for item in test[: options.report_prompts]]}
    generations["unedited"] = tune.answers(None, prompts, "test")
    if chosen is not None:
        generations["edited"] = tune.answers(chosen, prompts, "test")
    summary = summarise(
        tune=tune,
        chosen=chosen,
        trials=trials,
        tested=tested,
        generations=generations,
        minutes=tune.elapsed_minutes(),
    )
    write_tune_report(summary, out)
    return summary
