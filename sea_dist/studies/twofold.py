"""The two-fold TruthfulQA protocol with controls, as one call: :func:`run_twofold`.

Protocol (``../shared/data/README.md``): record and fit SEA on the demonstrations of fold 1
(positive = a correct answer, negative = an incorrect one, neutral = the model's own greedy
answer), score MC1/MC2 on fold 2, then swap; every question is scored once by a fit that never
saw it. Each setting of the grid (``twofold.settings`` in the YAML, see
:mod:`sea_dist.studies.twofold_options`) and each of its controls (random subspaces with the
same k per layer, roles swapped) goes through the same folds, next to the unedited model on the
same questions. A capability check (perplexity on the shipped held-out text, accuracy on the
built-in factual questions) runs under every SEA edit too.

It is the study engine of ``sea-dist tune`` on a fixed grid: one recording pass per fold for all
sites (:func:`sea_dist.studies.fits.record_sites`), one full-spectrum fit per fold and fit key
(:func:`~sea_dist.studies.fits.fit_recorded`; each setting applies its own K+, K-, layers, alpha
and positions), scores through :class:`~sea_dist.studies.scoring.VariantScorer`. Recordings and
scores are cached under ``<out>/cache/<fingerprint>/`` (score keys carry a digest of the
setting's axes), so an interrupted study resumes where it stopped, and a rerun with more
settings only scores the new ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from sea_dist.collect.record import record_options
from sea_dist.config import SeaConfig
from sea_dist.data import (
    load_builtin_demonstrations,
    load_heldout_text,
    load_truthfulqa_items,
    make_template,
)
from sea_dist.data.truthfulqa import demonstrations_from_items
from sea_dist.errors import DataError, expected_found
from sea_dist.evaluate.loglik import EncodedPairs
from sea_dist.evaluate.runner import benchmark_file_or_raise, subset
from sea_dist.evaluate.truthfulqa import AnswerLayout, truthfulqa_pairs
from sea_dist.models import load_model
from sea_dist.studies.fits import (
    ModelInfo,
    Recorded,
    StudyFit,
    build_edit,
    check_space,
    fit_recorded,
    record_sites,
)
from sea_dist.studies.scoring import ScoreCache, VariantScorer
from sea_dist.studies.space import Setting, Variant, variant_id, variants_of
from sea_dist.studies.twofold_bbq import run_bbq
from sea_dist.studies.twofold_options import TwofoldOptions, check_options
from sea_dist.studies.twofold_report import summarise, write_twofold_report

log = logging.getLogger(__name__)

FOLD_FILES = ("TruthfulQA-1.csv", "TruthfulQA-2.csv")


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


def fold_items(config: SeaConfig, limit: int | None) -> list[list[Any]]:
    """The two TruthfulQA folds' items (a seeded subset of ``limit`` each when set).

    Raises:
        DataError: a fold file is found nowhere (the message names the fetch command).
    """
    return [
        subset(load_truthfulqa_items(benchmark_file_or_raise(config, f"truthfulqa/{name}")), limit)
        for name in FOLD_FILES
    ]


# Where benchmark files are found, not which data: left out of the study digest, so a cache
# survives a moved data folder and caches written before these fields existed keep their digest.
DATA_LOCATION_FIELDS = frozenset({"data_dir", "cache_dir", "fetch", "source_url"})


def study_fingerprint(
    config: SeaConfig, revision: str, ids: Sequence[str], options: Sequence[Any] | None = None
) -> str:
    """16 hex digits over what changes recordings and unedited scores (not over the grid:
    edited scores are keyed by each setting's axes, K included).

    ``options``: the caller's own settings that change scores too (``sea-dist tune`` passes its
    chunking and generation limits); None adds nothing, so the two-fold study's digests stay.
    """
    document: dict[str, Any] = {
        "model": [config.model.id, revision, config.model.dtype],
        "data": {k: v for k, v in asdict(config.data).items() if k not in DATA_LOCATION_FIELDS},
        "collect": [config.collect.token, config.collect.neutral, config.collect.max_new_tokens],
        "ids": list(ids),
    }
    if options is not None:
        document["options"] = list(options)
    blob = json.dumps(document, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class StudyOptions(Protocol):
    """What :class:`ModelStudy` reads of a study's options."""

    @property
    def batch_size(self) -> int | None: ...


OptionsT = TypeVar("OptionsT", bound=StudyOptions)
KeyT = TypeVar("KeyT")


class ModelStudy(Generic[OptionsT, KeyT]):
    """What a study on one loaded model holds (the two-fold study and ``sea-dist tune``).

    Recordings and fits are memoised per key (``KeyT``: a site or fit key, with the task and fold
    where a study has several).

    Args:
        config: the run's config (``data`` picks the prompt template, ``evaluate.batch_size``
            the batch size when the options leave it unset).
        loaded: the loaded model (:func:`sea_dist.models.load_model`).
        out: the output folder (scores are cached under ``out/cache``).
        options: the study's options.
        progress: show progress bars.
    """

    def __init__(
        self, config: SeaConfig, loaded: Any, out: Path, options: OptionsT, progress: bool
    ) -> None:
        self.config = config
        self.loaded = loaded
        self.out = out
        self.options = options
        self.progress = progress
        self.info = ModelInfo(loaded.model_id, loaded.architecture, loaded.d_model, loaded.n_layers)
        self.template = make_template(config.data, loaded.tokenizer)
        self.batch_size = options.batch_size or config.evaluate.batch_size
        self.scorer: VariantScorer | None = None
        self.recordings: dict[KeyT, Recorded] = {}
        self.fits: dict[KeyT, StudyFit] = {}

    @property
    def cache(self) -> ScoreCache:
        """The study's cache folder (open after :meth:`prepare`)."""
        assert self.scorer is not None, "prepare() first"
        return self.scorer.cache


class TwofoldStudy(ModelStudy[TwofoldOptions, tuple[str, int, str]]):
    """Runs the grid on a loaded model; see the module docstring."""

    def __init__(
        self,
        config: SeaConfig,
        loaded: Any,
        out: Path,
        options: TwofoldOptions,
        progress: bool = True,
    ) -> None:
        super().__init__(config, loaded, out, options, progress)
        self.generated: dict[tuple[str, int], list[str]] = {}

    # -- inputs -----------------------------------------------------------------------------

    def prepare(self, folds: list[list[Any]]) -> StudyData:
        """Demonstrations, tokenised test sets and capability inputs of both folds."""
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
        cache = ScoreCache(self.out / "cache" / fingerprint)
        self.scorer = VariantScorer(self.loaded, cache, self.batch_size)
        return StudyData(
            fit_demos=demos,
            test_pairs=test_pairs,
            layouts=layouts,
            test_ids=test_ids,
            builtin=EncodedPairs.build(tokenizer, builtin),
            heldout=load_heldout_text(),
        )

    def record(
        self, task: str, fold: int, sites: Sequence[str], demos: Sequence[Any]
    ) -> dict[str, Recorded]:
        """Activations of ``demos`` at every layer of each site (one pass for the missing sites,
        one neutral generation; cached per task, fold and site)."""

        def name(site: str) -> str:
            return f"activations-{task}-fold{fold + 1}-{site}"

        missing = [s for s in dict.fromkeys(sites) if (task, fold, s) not in self.recordings]
        cached = {site: self.cache.get(name(site)) for site in missing}
        to_record = [site for site, arrays in cached.items() if arrays is None]
        if to_record:
            log.info(
                "recording %s fold %d: %d demonstrations at %s",
                task,
                fold + 1,
                len(demos),
                ", ".join(to_record),
            )
            recorded, generated = record_sites(
                self.loaded, self.template, demos, to_record, record_options(self.config)
            )
            texts = np.asarray(generated, dtype=str)
            for site, rec in recorded.items():
                fresh = {
                    "neutral": rec.neutral,
                    "positive": rec.positive,
                    "negative": rec.negative,
                    "generated": texts,
                }
                self.cache.put(name(site), **fresh)
                cached[site] = fresh
        layers = tuple(range(self.loaded.n_layers))
        for site in missing:
            arrays = cached[site]
            assert arrays is not None  # recorded above when it was not cached
            self.generated[(task, fold)] = [str(text) for text in arrays["generated"]]
            self.recordings[(task, fold, site)] = Recorded(
                layers, arrays["neutral"], arrays["positive"], arrays["negative"]
            )
        return {site: self.recordings[(task, fold, site)] for site in sites}

    def fit(self, task: str, fold: int, setting: Setting, demos: Sequence[Any]) -> StudyFit:
        """The setting's fit on one fold (shared by settings with the same fit key)."""
        key = (task, fold, setting.fit_key)
        if key not in self.fits:
            recorded = self.record(task, fold, [setting.site], demos)[setting.site]
            self.fits[key] = fit_recorded(recorded, setting)
        return self.fits[key]

    # -- scoring ----------------------------------------------------------------------------

    def score(
        self,
        task: str,
        variant: Variant | None,
        fits: Sequence[StudyFit] | None,
        tests: Sequence[EncodedPairs],
        capability: tuple[EncodedPairs, list[str]] | None,
        tick: Callable[[str], None],
    ) -> VariantScores:
        """Score one variant (None = unedited) on both folds' test sets (each result cached).

        ``tests[f]`` is scored under the fit of fold ``f`` (``fits[f]``), i.e. on the other fold;
        ``capability`` (built-in pairs, held-out texts) is measured under each fold's edit.
        """
        assert self.scorer is not None
        scorer = self.scorer
        name = "unedited" if variant is None else variant_id(variant)
        setting = None if variant is None else variant.setting
        label = "unedited" if variant is None else variant.key
        parts, ppl, acc = [], [], []
        for fold, test in enumerate(tests):
            edit = None
            if variant is not None:
                assert fits is not None
                source = f"twofold:{task}:{variant.key}:fold{fold + 1}"
                edit = build_edit(variant, fits[fold], self.info, source)
            # keyed by the fold scored: the fold-1 fit scores fold 2
            parts.append(scorer.logprob(f"{task}-fold{2 - fold}-{name}", test, edit, setting))
            if capability is not None:
                builtin, texts = capability
                tag = name if variant is None else f"fit{fold + 1}-{name}"
                logprob = scorer.logprob(f"builtin-{tag}", builtin, edit, setting)
                acc.append(float(np.mean(logprob[0::2] > logprob[1::2])))
                ppl.append(scorer.perplexity(f"ppl-{tag}", texts, edit, setting))
            tick(f"{label} fold {fold + 1}")
        return VariantScores(np.concatenate(parts), ppl, acc)


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
            answers), collect options (token, neutral mode, max_new_tokens, batch),
            evaluate.data_dir and evaluate.batch_size.
        out: folder for ``twofold.md``, ``twofold.json``, plots and the cache.
        options: the grid (each setting with its own K+, K-, layers, alpha, positions) and the
            study's sizes (:func:`~sea_dist.studies.twofold_options.twofold_options_from_dict`).
        loaded: an already loaded model (else ``config.model`` is loaded).
        progress: show progress bars.

    Returns:
        The summary written to ``twofold.json``.
    """
    from tqdm.auto import tqdm

    options = options or TwofoldOptions()
    check_options(options)
    folds = fold_items(config, options.limit)
    loaded = loaded or load_model(config.model)
    check_space(options.settings, loaded.n_layers)
    study = TwofoldStudy(config, loaded, Path(out), options, progress)
    data = study.prepare(folds)
    sites = sorted({setting.site for setting in options.settings})
    for fold in (0, 1):
        study.record("tqa", fold, sites, data.fit_demos[fold])

    variants = [v for s in options.settings for v in variants_of(s, options.seeds)]
    bar = tqdm(total=2 * (1 + len(variants)), desc="two-fold", unit="eval", disable=not progress)

    def tick(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    capability = (data.builtin, data.heldout)
    unedited = study.score("tqa", None, None, data.test_pairs, capability, tick)
    scores: dict[str, VariantScores] = {}
    fits: dict[str, list[StudyFit]] = {}
    for setting in options.settings:
        fits[setting.name] = [study.fit("tqa", f, setting, data.fit_demos[f]) for f in (0, 1)]
        for variant in variants_of(setting, options.seeds):
            # capability is measured under SEA's own edits; the controls only need MC scores
            checks = capability if variant.control is None else None
            scores[variant.key] = study.score(
                "tqa", variant, fits[setting.name], data.test_pairs, checks, tick
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
        summary["bbq"] = run_bbq(study, chosen, options)
        write_twofold_report(summary, Path(out))
    return summary
