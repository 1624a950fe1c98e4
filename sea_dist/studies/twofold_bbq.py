"""BBQ two-fold for one setting of the study: fit on half the rows, score the other half, swap.

The 4,000 disambiguated validation rows are split in two by a seeded permutation (the file is
sorted by category, so halves by position would not be comparable). Demonstrations: the
labelled answer is positive, the other person negative (:func:`sea_dist.data.bbq_demonstration`).
SEA, its random-subspace controls and its swapped control are scored against the unedited model
on the same rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from sea_dist.data import bbq_demonstration, load_bbq_items
from sea_dist.errors import DataError, expected_found
from sea_dist.evaluate.bbq import bbq_prompt
from sea_dist.evaluate.loglik import EncodedPairs
from sea_dist.evaluate.stats import paired_bootstrap
from sea_dist.studies.space import Setting, variants_of


def bbq_folds(path: Path, limit: int | None, seed: int = 0) -> list[list[Any]]:
    """Two disjoint halves of the BBQ rows (``limit`` rows each when set)."""
    if not path.is_file():
        raise DataError(
            expected_found("BBQ two-fold", str(path), "no such file", "set evaluate.data_dir")
        )
    items = load_bbq_items(path)
    order = np.random.default_rng(seed).permutation(len(items))
    half = len(items) // 2
    folds = [sorted(order[:half].tolist()), sorted(order[half:].tolist())]
    if limit is not None:
        folds = [fold[:limit] for fold in folds]
    return [[items[i] for i in fold] for fold in folds]


def run_bbq(study: Any, setting: Setting, options: Any) -> dict[str, Any]:
    """Accuracy of the unedited model, SEA and its controls, two-fold over the BBQ rows.

    Args:
        study: the running :class:`~sea_dist.studies.twofold.TwofoldStudy` (model, cache).
        setting: the setting to fit and apply.
        options: the study's :class:`~sea_dist.studies.twofold_options.TwofoldOptions`.

    Returns:
        ``{"setting", "n", "unedited", "sea", "random", "swapped", "vs": {...}}``.
    """
    from sea_dist.evaluate.runner import BBQ_FILE, benchmark_file_or_raise

    path = benchmark_file_or_raise(study.config, BBQ_FILE)
    folds = bbq_folds(path, options.bbq_limit)
    # the cache keys name the rows, so another --bbq-limit never reuses stale entries
    ids = hashlib.sha256("\n".join(i.id for fold in folds for i in fold).encode()).hexdigest()
    task = f"bbq-{ids[:12]}"
    demos = [[bbq_demonstration(item, row) for row, item in enumerate(fold)] for fold in folds]
    template, tokenizer = study.template, study.loaded.tokenizer
    tests, labels = [], []
    for fit_fold in (0, 1):
        items = folds[1 - fit_fold]
        pairs = [
            (template.render(bbq_prompt(item)), template.completion(answer))
            for item in items
            for answer in item.answers
        ]
        tests.append(EncodedPairs.build(tokenizer, pairs))
        labels.append(np.array([item.label for item in items]))
    label = np.concatenate(labels)
    fits = [study.fit(task, fold, setting, demos[fold]) for fold in (0, 1)]

    def correct(scores: Any) -> np.ndarray:
        return (scores.logprob.reshape(-1, 3).argmax(axis=1) == label).astype(np.float64)

    def tick(_: str) -> None:
        return None

    results = {"unedited": correct(study.score(task, None, None, tests, None, tick))}
    randoms = []
    for variant in variants_of(setting, options.seeds):
        scores = study.score(task, variant, fits, tests, None, tick)
        if variant.control == "random":
            randoms.append(correct(scores))
        else:
            results[variant.control or "sea"] = correct(scores)
    results["random"] = np.mean(randoms, axis=0)
    sea = results["sea"]
    vs = {}
    for name in ("unedited", "random", "swapped"):
        diff = paired_bootstrap(sea, results[name], resamples=options.resamples)
        vs[name] = {"mean": diff.mean, "low": diff.low, "high": diff.high}
    return {
        "setting": setting.name,
        "n": int(label.size),
        **{name: float(values.mean()) for name, values in results.items()},
        "vs": vs,
    }
