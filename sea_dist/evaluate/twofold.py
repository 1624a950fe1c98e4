"""The two-fold TruthfulQA protocol with controls, as one call: :func:`run_twofold`.

Protocol (``../shared/data/README.md``): record and fit SEA on the demonstrations of fold 1
(positive = a correct answer, negative = an incorrect one, neutral = the model's own greedy
answer), score MC1/MC2 on fold 2, then swap; every question is scored once by a fit that never
saw it. Each setting of the grid (:mod:`sea_dist.evaluate.settings`) and each of its controls
(random subspaces with the same k per layer, roles swapped) goes through the same folds, next to
the unedited model on the same questions. A capability check (perplexity on the shipped held-out
text, accuracy on the built-in factual questions) runs under every edit too.

Everything runs in one process on one device: one model load, one recording per fold and site
(the neutral generations are shared between sites), exact fits in memory. Recordings and
per-variant scores are cached under ``<out>/cache/<fingerprint>/`` so an interrupted study
resumes where it stopped, and a rerun with more settings only scores the new ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sea_dist.config import SeaConfig
from sea_dist.errors import ConfigError, DataError, expected_found
from sea_dist.evaluate.loglik import EncodedPairs
from sea_dist.evaluate.settings import DEFAULT_GRID, Setting, Variant, variants_of
from sea_dist.evaluate.truthfulqa import AnswerLayout, truthfulqa_pairs
from sea_dist.evaluate.variants import FoldFit, ModelInfo, RecordedFold, build_edit, fit_fold

log = logging.getLogger(__name__)

FOLD_FILES = ("TruthfulQA-1.csv", "TruthfulQA-2.csv")


@dataclass(frozen=True)
class TwofoldOptions:
    """What the study runs.

    Attributes:
        settings: the settings compared (each with its controls).
        seeds: random-subspace controls per setting.
        limit: questions per fold (a seeded subset; None = all 817).
        batch_size: sequences per forward pass when scoring.
        bbq: also run BBQ two-fold for this setting name, ``best`` (the best TruthfulQA margin)
            or None.
        bbq_limit: BBQ rows per fold (None = all 4,000 split in two).
        resamples: bootstrap resamples for the confidence intervals.
    """

    settings: tuple[Setting, ...] = DEFAULT_GRID
    seeds: int = 3
    limit: int | None = None
    batch_size: int = 8
    bbq: str | None = "best"
    bbq_limit: int | None = None
    resamples: int = 10_000


@dataclass
class VariantScores:
    """A variant's scores over both folds (fold-1 fit scored on fold 2, then the reverse).

    Attributes:
        logprob: ``(answers,)`` summed answer log-probabilities, both folds concatenated.
        perplexity: held-out perplexity under each fold's edit.
        builtin_accuracy: built-in factual accuracy under each fold's edit.
    """

    logprob: np.ndarray
    perplexity: list[float] = field(default_factory=list)
    builtin_accuracy: list[float] = field(default_factory=list)


@dataclass
class StudyData:
    """The study's fixed inputs: per-fold demonstrations and pre-tokenised test sets."""

    fit_demos: list[list[Any]]
    test_pairs: list[EncodedPairs]
    layouts: list[AnswerLayout]
    test_ids: list[str]
    builtin: EncodedPairs
    heldout: list[str]


class ScoreCache:
    """``.npz`` files keyed by name in one folder, written atomically (a rerun resumes)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        path = self.folder / f"{key}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def put(self, key: str, **arrays: np.ndarray) -> None:
        path = self.folder / f"{key}.npz"
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(path)


def fold_items(data_dir: Path, limit: int | None) -> list[list[Any]]:
    """The two TruthfulQA folds' items (a seeded subset of ``limit`` each when set)."""
    from sea_dist.data import load_truthfulqa_items
    from sea_dist.evaluate.runner import subset

    folds = []
    for name in FOLD_FILES:
        path = data_dir / "truthfulqa" / name
        if not path.is_file():
            raise DataError(
                expected_found(
                    "two-fold TruthfulQA",
                    f"{path}",
                    "no such file",
                    "set evaluate.data_dir or SEA_DIST_DATA_DIR to the benchmark data folder",
                )
            )
        folds.append(subset(load_truthfulqa_items(path), limit))
    return folds


def study_fingerprint(config: SeaConfig, revision: str, ids: Sequence[str]) -> str:
    """16 hex digits over what changes recordings and scores (not over the grid)."""
    document = {
        "model": [config.model.id, revision, config.model.dtype],
        "data": asdict(config.data),
        "collect": [config.collect.token, config.collect.neutral, config.collect.max_new_tokens],
        "fit": [config.fit.positive_energy, config.fit.negative_energy],
        "ids": list(ids),
    }
    blob = json.dumps(document, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def check_options(options: TwofoldOptions) -> None:
    """Refuse bad options before any work (a full study takes hours on a CPU).

    Raises:
        ConfigError: no settings, seeds/limits/batch below 1, or ``bbq`` not ``best`` nor a
            setting of the grid.
    """
    if not options.settings:
        raise ConfigError(expected_found("settings", "at least one", "none"))
    for name in ("seeds", "batch_size", "resamples", "limit", "bbq_limit"):
        value = getattr(options, name)
        if value is not None and value < 1:
            flag = name.replace("_", "-")
            raise ConfigError(expected_found(f"{name} (--{flag})", "an integer >= 1", value))
    names = [setting.name for setting in options.settings]
    if options.bbq is not None and options.bbq != "best" and options.bbq not in names:
        raise ConfigError(
            expected_found("bbq (--bbq)", f"'best' or one of {', '.join(names)}", options.bbq)
        )


def check_layers(settings: Sequence[Setting], n_layers: int) -> None:
    """Refuse ``last-L`` / ``first-L`` settings the model is too shallow for, before any work."""
    for setting in settings:
        spec = setting.layers
        if spec != "all" and int(spec.split("-")[1]) > n_layers:
            raise ConfigError(
                expected_found(
                    f"setting {setting.name}: layers",
                    f"at most {n_layers} layers (the model's)",
                    spec,
                    "pick settings with --settings",
                )
            )


class TwofoldStudy:
    """Runs the grid on a loaded model; see the module docstring."""

    def __init__(
        self,
        config: SeaConfig,
        loaded: Any,
        out: Path,
        options: TwofoldOptions,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.loaded = loaded
        self.options = options
        self.progress = progress
        self.info = ModelInfo(loaded.model_id, loaded.architecture, loaded.d_model, loaded.n_layers)
        self.out = out
        self.recordings: dict[tuple[str, int, str], RecordedFold] = {}
        self.fits: dict[tuple[str, int, str], FoldFit] = {}
        self.cache: ScoreCache | None = None
        from sea_dist.data import make_template

        self.template = make_template(config.data, loaded.tokenizer)
        # one generation per (task, fold), replayed at every site
        self._sequences: dict[tuple[str, int], Any] = {}
        self.generated: dict[tuple[str, int], list[str]] = {}

    # -- inputs -----------------------------------------------------------------------------

    def prepare(self, folds: list[list[Any]]) -> StudyData:
        """Demonstrations, tokenised test sets and capability inputs of both folds."""
        from sea_dist.data import load_builtin_demonstrations, load_heldout_text
        from sea_dist.data.truthfulqa import demonstrations_from_items

        tokenizer = self.loaded.tokenizer
        data = self.config.data
        demos = [demonstrations_from_items(items, data.positive, data.negative) for items in folds]
        test_pairs, layouts, test_ids = [], [], []
        for fit_fold_index in (0, 1):
            items = folds[1 - fit_fold_index]
            pairs, layout = truthfulqa_pairs(items, self.template)
            test_pairs.append(EncodedPairs.build(tokenizer, pairs))
            layouts.append(layout)
            test_ids += [item.id for item in items]
        builtin = [
            (self.template.render(d.prompt), self.template.completion(answer))
            for d in load_builtin_demonstrations()
            for answer in (d.positive, d.negative)
        ]
        fingerprint = study_fingerprint(self.config, self.loaded.revision, test_ids)
        self.cache = ScoreCache(self.out / "cache" / fingerprint)
        return StudyData(
            fit_demos=demos,
            test_pairs=test_pairs,
            layouts=layouts,
            test_ids=test_ids,
            builtin=EncodedPairs.build(tokenizer, builtin),
            heldout=load_heldout_text(),
        )

    def record(self, task: str, fold: int, site: str, demos: Sequence[Any]) -> RecordedFold:
        """Activations of ``demos`` at every layer of ``site`` (cached; generation shared)."""
        from sea_dist.collect.record import ActivationRecorder, RecordOptions
        from sea_dist.layers import site_modules

        key = (task, fold, site)
        if key in self.recordings:
            return self.recordings[key]
        assert self.cache is not None
        name = f"activations-{task}-fold{fold + 1}-{site}"
        cached = self.cache.get(name)
        layers = tuple(range(self.loaded.n_layers))
        if cached is None:
            collect = self.config.collect
            options = RecordOptions(
                token=collect.token,
                neutral=collect.neutral,
                max_new_tokens=collect.max_new_tokens,
                batch_size=collect.batch_size,
            )
            model, tokenizer = self.loaded.model, self.loaded.tokenizer
            recorder = ActivationRecorder(
                model, tokenizer, site_modules(model, layers, site), self.template, options
            )
            generated_key = (task, fold)
            if generated_key not in self._sequences:
                log.info("recording %s fold %d: %d demonstrations", task, fold + 1, len(demos))
                self._sequences[generated_key] = recorder.sequences(demos)
            sequences, generated = self._sequences[generated_key]
            recorded = recorder.record_sequences(len(demos), sequences, generated)
            self.cache.put(
                name,
                neutral=recorded.neutral,
                positive=recorded.positive,
                negative=recorded.negative,
                generated=np.asarray(generated, dtype=str),
            )
            cached = recorded.arrays()
            cached["generated"] = np.asarray(generated, dtype=str)
        self.generated[(task, fold)] = [str(text) for text in cached["generated"]]
        result = RecordedFold(layers, cached["neutral"], cached["positive"], cached["negative"])
        self.recordings[key] = result
        return result

    def fit(self, task: str, fold: int, setting: Setting, demos: Sequence[Any]) -> FoldFit:
        """The setting's fit on one fold (shared by settings with the same fit key)."""
        key = (task, fold, setting.fit_key)
        if key not in self.fits:
            recorded = self.record(task, fold, setting.site, demos)
            self.fits[key] = fit_fold(
                recorded,
                setting,
                self.config.fit.positive_energy,
                self.config.fit.negative_energy,
            )
        return self.fits[key]

    # -- scoring ----------------------------------------------------------------------------

    def score(
        self,
        key: str,
        variant: Variant | None,
        fits: Sequence[FoldFit | None],
        tests: Sequence[EncodedPairs],
        capability: tuple[EncodedPairs, list[str]] | None,
        tick: Callable[[str], None],
    ) -> VariantScores:
        """Score one variant (None = unedited) on both folds' test sets, cached by ``key``."""
        from sea_dist.edit import apply_edit
        from sea_dist.evaluate.perplexity import perplexity

        assert self.cache is not None
        cached = self.cache.get(key)
        if cached is not None:
            tick(key)
            return VariantScores(
                cached["logprob"],
                cached["perplexity"].tolist(),
                cached["builtin_accuracy"].tolist(),
            )
        batch = self.options.batch_size
        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        parts, ppl, acc = [], [], []
        for fold, (fitted, test) in enumerate(zip(fits, tests)):
            handle = None
            if variant is not None and fitted is not None:
                setting = variant.setting
                edit = build_edit(variant, fitted, self.info, f"twofold:{key}:fold{fold + 1}")
                handle = apply_edit(
                    self.loaded,
                    edit,
                    layers=setting.layers,
                    skip_first_token=setting.skip_first_token,
                )
            try:
                parts.append(test.score(model, batch).logprob)
                if capability is not None:
                    builtin, texts = capability
                    logprob = builtin.score(model, batch).logprob
                    acc.append(float(np.mean(logprob[0::2] > logprob[1::2])))
                    ppl.append(perplexity(model, tokenizer, texts, batch).perplexity)
            finally:
                if handle is not None:
                    handle.remove()
            tick(f"{key} fold {fold + 1}")
        scores = VariantScores(np.concatenate(parts), ppl, acc)
        self.cache.put(
            key,
            logprob=scores.logprob,
            perplexity=np.asarray(ppl, dtype=np.float64),
            builtin_accuracy=np.asarray(acc, dtype=np.float64),
        )
        return scores


def run_twofold(
    config: SeaConfig,
    out: str | Path,
    options: TwofoldOptions | None = None,
    *,
    loaded: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the two-fold TruthfulQA study (and BBQ for one setting) and write its report.

    Args:
        config: model, data template (``data.positive``/``negative`` pick the demonstration
            answers), collect options (token, neutral mode, max_new_tokens, batch), fit K+/K-,
            evaluate.data_dir.
        out: folder for ``twofold.md``, ``twofold.json``, plots and the cache.
        options: the grid and its sizes.
        loaded: an already loaded model (else ``config.model`` is loaded).
        progress: show progress bars.

    Returns:
        The summary written to ``twofold.json``.
    """
    from tqdm.auto import tqdm

    from sea_dist.evaluate.runner import benchmark_data_dir
    from sea_dist.evaluate.twofold_bbq import run_bbq
    from sea_dist.evaluate.twofold_report import summarise, write_twofold_report
    from sea_dist.models import load_model

    options = options or TwofoldOptions()
    check_options(options)
    data_dir = benchmark_data_dir(config)
    if data_dir is None:
        raise DataError(
            expected_found(
                "benchmark data folder",
                "evaluate.data_dir, SEA_DIST_DATA_DIR or ../shared/data",
                "none of them",
                "point evaluate.data_dir at the folder holding truthfulqa/",
            )
        )
    folds = fold_items(data_dir, options.limit)
    loaded = loaded or load_model(config.model)
    check_layers(options.settings, loaded.n_layers)
    study = TwofoldStudy(config, loaded, Path(out), options, progress)
    data = study.prepare(folds)

    variants = [v for s in options.settings for v in variants_of(s, options.seeds)]
    bar = tqdm(total=2 * (1 + len(variants)), desc="two-fold", unit="eval", disable=not progress)

    def tick(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1 if " fold " in label else 2)

    capability = (data.builtin, data.heldout)
    unedited = study.score("unedited", None, [None, None], data.test_pairs, capability, tick)
    scores: dict[str, VariantScores] = {}
    fits: dict[str, list[FoldFit]] = {}
    for setting in options.settings:
        fits[setting.name] = [study.fit("tqa", f, setting, data.fit_demos[f]) for f in (0, 1)]
        for variant in variants_of(setting, options.seeds):
            # capability is measured under SEA's own edits; the controls only need MC scores
            checks = capability if variant.control is None else None
            scores[variant.key] = study.score(
                variant.key, variant, fits[setting.name], data.test_pairs, checks, tick
            )
            log.info("%s scored", variant.key)
    bar.close()
    summary = summarise(
        config=config,
        loaded=loaded,
        options=options,
        data=data,
        unedited=unedited,
        scores=scores,
        fits=fits,
        generated=study.generated,
    )
    # written now and again after BBQ: an interrupted BBQ part keeps the TruthfulQA report
    write_twofold_report(summary, Path(out))
    if options.bbq is not None:
        name = summary["best"] if options.bbq == "best" else options.bbq
        chosen = next((s for s in options.settings if s.name == name), None)
        if chosen is None:
            raise DataError(expected_found("--bbq", "a setting in the grid or 'best'", options.bbq))
        summary["bbq"] = run_bbq(study, chosen, data_dir, options)
        write_twofold_report(summary, Path(out))
    return summary
