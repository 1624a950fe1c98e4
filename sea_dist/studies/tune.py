"""``sea-dist tune``: choose an edit on held-out data under a damage budget, then test it once.

Protocol (nothing here ever reads the test fold before the choice is made):

1. The dev fold's questions are shuffled (seeded) and split into a *fit* part and a
   *validation* part. Demonstrations of the fit part are recorded once at every site the space
   needs (:func:`sea_dist.studies.fits.record_sites`) and fitted once per fit key with full
   spectra (:func:`sea_dist.studies.fits.fit_recorded`).
2. Every setting of the space is scored on the validation questions next to its controls
   (roles swapped; random subspaces with the same k, ``seeds`` draws averaged): the objective
   is the *margin*, mean MC2 of SEA minus that of its best control. Cheap damage checks
   (held-out perplexity ratio, log p change per answer token) are taken for every setting.
   Successive halving: the first round scores ``first_round_chunks`` chunks of questions, each
   round keeps the best 1/eta of the settings (settings inside the measured budget first) and
   scores eta times as many questions, until the validation part is used up, ``finalists``
   remain, or the time budget says stop.
3. The finalists get the full damage check (built-in factual accuracy, greedy answer rate); the
   chosen setting is the one with the best validation margin inside the whole budget.
4. Only then the test fold is scored, once, for the chosen setting and the presets, with
   paired bootstrap intervals; :mod:`sea_dist.studies.tune_report` writes the report.

Scores are cached under ``<out>/cache/<fingerprint>/`` (an interrupted tune resumes) and log
likelihoods restart from cached inputs of the first edited layer (:mod:`.restart`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sea_dist.collect.record import record_options
from sea_dist.config import SeaConfig
from sea_dist.data import load_heldout_text
from sea_dist.data.truthfulqa import demonstrations_from_items
from sea_dist.evaluate.capability import CapabilityInputs, answer_rate
from sea_dist.evaluate.stats import mean_logprob_change_per_token, paired_bootstrap
from sea_dist.evaluate.truthfulqa import mc_from_logprobs
from sea_dist.studies.fits import (
    Recorded,
    StudyFit,
    build_edit,
    edited_layers,
    fit_recorded,
    record_sites,
)
from sea_dist.studies.options import TuneOptions
from sea_dist.studies.questions import QuestionSet, split_dev
from sea_dist.studies.restart import RestartCache
from sea_dist.studies.scoring import ScoreCache, VariantScorer
from sea_dist.studies.space import Setting, Variant, setting_id, variant_id, variants_of
from sea_dist.studies.twofold import ModelStudy, study_fingerprint

log = logging.getLogger(__name__)


class Tune(ModelStudy[TuneOptions, str]):
    """One tuning run on a loaded model (see the module doc)."""

    def __init__(
        self,
        config: SeaConfig,
        options: TuneOptions,
        loaded: Any,
        out: Path,
        progress: bool = True,
    ) -> None:
        super().__init__(config, loaded, out, options, progress)
        self.started = time.perf_counter()
        self.search_started = self.started

    # -- inputs -----------------------------------------------------------------------------

    def prepare(self, dev: list[Any], test: list[Any], settings: Sequence[Setting]) -> None:
        """Split the dev fold, tokenise question sets and capability inputs, open caches.

        ``settings``: every setting the run may score (space and presets): their first edited
        layers are the restart cache's capture layers.
        """
        self.settings = list(settings)

        options = self.options
        tokenizer = self.loaded.tokenizer
        self.fit_items, val_items = split_dev(dev, options.validation_fraction, options.seed)
        chunk = options.chunk_questions
        self.validation = QuestionSet.build("val", val_items, self.template, tokenizer, chunk)
        self.test = QuestionSet.build("test", test, self.template, tokenizer, chunk)
        self.capability = CapabilityInputs.build(
            tokenizer, self.template, generation_limit=options.generation_limit
        )
        self.heldout = load_heldout_text()
        fingerprint = self.fingerprint([i.id for i in self.fit_items + val_items + test])
        folder = self.out / "cache" / fingerprint
        restart = None
        if options.restart:
            starts = {min(edited_layers(s, self.info.n_layers)) for s in self.settings}
            restart = RestartCache(
                self.loaded.model,
                folder / "restart",
                fingerprint,
                capture_layers=sorted(starts - {0}),
            )
        self.scorer = VariantScorer(self.loaded, ScoreCache(folder), self.batch_size, restart)
        log.info(
            "dev fold: %d fit + %d validation questions; test fold: %d questions; cache %s",
            len(self.fit_items),
            len(val_items),
            len(test),
            folder,
        )

    def fingerprint(self, ids: Sequence[str]) -> str:
        """16 hex digits over what changes recordings and scores (never over the space)."""
        o = self.options
        scoring = [o.chunk_questions, o.generation_limit, o.max_new_tokens, o.seed]
        return study_fingerprint(self.config, self.loaded.revision, ids, scoring)

    def record(self, settings: Sequence[Setting]) -> None:
        """Record the fit part's demonstrations at every site ``settings`` need (cached)."""
        cache = self.cache
        sites = sorted({s.site for s in settings} - set(self.recordings))
        missing = [site for site in sites if cache.get(f"activations-{site}") is None]
        if missing:
            data = self.config.data
            demos = demonstrations_from_items(self.fit_items, data.positive, data.negative)
            log.info("recording %d demonstrations at %s", len(demos), ", ".join(missing))
            options = record_options(self.config)
            recorded, _ = record_sites(self.loaded, self.template, demos, missing, options)
            for site, rec in recorded.items():
                cache.put(
                    f"activations-{site}",
                    neutral=rec.neutral,
                    positive=rec.positive,
                    negative=rec.negative,
                )
        for site in sites:
            arrays = cache.get(f"activations-{site}")
            assert arrays is not None
            layers = tuple(range(self.loaded.n_layers))
            self.recordings[site] = Recorded(
                layers, arrays["neutral"], arrays["positive"], arrays["negative"]
            )

    def fit(self, setting: Setting) -> StudyFit:
        """The setting's fit (shared by settings with the same fit key)."""
        if setting.fit_key not in self.fits:
            self.record([setting])
            self.fits[setting.fit_key] = fit_recorded(self.recordings[setting.site], setting)
        return self.fits[setting.fit_key]

    # -- scoring ----------------------------------------------------------------------------

    def _edit(self, variant: Variant) -> Any:
        return build_edit(variant, self.fit(variant.setting), self.info, f"tune:{variant.key}")

    def logprob(self, questions: QuestionSet, variant: Variant | None, n_chunks: int) -> np.ndarray:
        """Answer log-probabilities of the first ``n_chunks`` chunks (None = unedited)."""
        assert self.scorer is not None
        parts = []
        edit = None if variant is None else self._edit(variant)
        name = "unedited" if variant is None else variant_id(variant)
        setting = None if variant is None else variant.setting
        for index, (pairs, _) in enumerate(questions.chunks[:n_chunks]):
            key = f"{questions.name}{index}-{name}"
            parts.append(self.scorer.logprob(key, pairs, edit, setting))
        return np.concatenate(parts)

    def perplexity(self, setting: Setting | None) -> float:
        """Held-out perplexity under SEA of ``setting`` (None = unedited)."""
        assert self.scorer is not None
        if setting is None:
            return self.scorer.perplexity("ppl-unedited", self.heldout, None, None)
        variant = Variant(setting)
        return self.scorer.perplexity(
            f"ppl-{setting_id(setting)}", self.heldout, self._edit(variant), setting
        )

    def builtin_accuracy(self, setting: Setting | None) -> float:
        """Two-choice accuracy on the built-in questions under SEA of ``setting``."""
        assert self.scorer is not None
        edit = None if setting is None else self._edit(Variant(setting))
        name = "unedited" if setting is None else setting_id(setting)
        logprob = self.scorer.logprob(f"builtin-{name}", self.capability.builtin, edit, setting)
        return float(np.mean(logprob[0::2] > logprob[1::2]))

    def answers(self, setting: Setting | None, prompts: list[str], tag: str) -> list[str]:
        """Greedy answers to ``prompts`` under SEA of ``setting``."""
        assert self.scorer is not None
        edit = None if setting is None else self._edit(Variant(setting))
        name = "unedited" if setting is None else setting_id(setting)
        return self.scorer.answers(
            f"gen{tag}-{name}", prompts, edit, setting, self.options.max_new_tokens
        )

    def answer_rate(self, setting: Setting | None) -> float:
        """Share of greedy built-in answers that contain the true answer."""
        texts = self.answers(setting, self.capability.prompts, "builtin")
        return answer_rate(texts, self.capability.truths)

    def compare(
        self, questions: QuestionSet, setting: Setting, n_chunks: int, intervals: bool
    ) -> dict[str, Any]:
        """SEA of ``setting`` against the unedited model and its controls on some questions.

        Returns:
            Means (MC1, MC2 of SEA, unedited and each control), the margin over the best
            control, the log p change per answer token, and paired bootstrap intervals when
            ``intervals``.
        """
        layout = questions.layout(n_chunks)
        base_lp = self.logprob(questions, None, n_chunks)
        base = mc_from_logprobs(base_lp, layout)
        sea_lp = self.logprob(questions, Variant(setting), n_chunks)
        sea = mc_from_logprobs(sea_lp, layout)
        randoms = [
            mc_from_logprobs(self.logprob(questions, v, n_chunks), layout)
            for v in variants_of(setting, self.options.seeds)
            if v.control == "random"
        ]
        random = (
            np.mean([r[0] for r in randoms], axis=0),
            np.mean([r[1] for r in randoms], axis=0),
        )
        swapped = mc_from_logprobs(
            self.logprob(questions, Variant(setting, "swapped"), n_chunks), layout
        )
        controls = {"random": random, "swapped": swapped}
        best = max(controls, key=lambda name: float(np.mean(controls[name][1])))
        result: dict[str, Any] = {
            "n_questions": questions.n_questions(n_chunks),
            "mc1": float(np.mean(sea[0])),
            "mc2": float(np.mean(sea[1])),
            "unedited_mc1": float(np.mean(base[0])),
            "unedited_mc2": float(np.mean(base[1])),
            "random_mc2": float(np.mean(random[1])),
            "swapped_mc2": float(np.mean(swapped[1])),
            "best_control": best,
            "margin": float(np.mean(sea[1] - controls[best][1])),
            "delta_mc2": float(np.mean(sea[1] - base[1])),
            "delta_mc1": float(np.mean(sea[0] - base[0])),
            "logprob_per_token_delta": mean_logprob_change_per_token(
                sea_lp, base_lp, questions.n_tokens(n_chunks)
            ),
        }
        if intervals:
            resamples = self.options.resamples
            for name, other in (
                ("margin", controls[best][1]),
                ("vs_random", random[1]),
                ("vs_swapped", swapped[1]),
                ("delta_mc2", base[1]),
            ):
                diff = paired_bootstrap(sea[1], other, resamples)
                result[f"{name}_ci"] = [diff.mean, diff.low, diff.high]
            diff = paired_bootstrap(sea[0], base[0], resamples)
            result["delta_mc1_ci"] = [diff.mean, diff.low, diff.high]
        return result

    def damage(self, setting: Setting, full: bool) -> dict[str, float]:
        """Damage metrics of SEA under ``setting`` (``full`` adds the costly ones)."""
        perplexity = self.perplexity(setting)
        metrics = {
            "perplexity": perplexity,
            "perplexity_ratio": perplexity / self.perplexity(None),
        }
        if full:
            accuracy, rate = self.builtin_accuracy(setting), self.answer_rate(setting)
            metrics["builtin_accuracy"] = accuracy
            metrics["builtin_accuracy_delta"] = accuracy - self.builtin_accuracy(None)
            metrics["answer_rate"] = rate
            metrics["generation_delta"] = rate - self.answer_rate(None)
        return metrics

    # -- selection --------------------------------------------------------------------------

    def budget_failures(self, metrics: dict[str, Any], full: bool) -> list[str]:
        """Budget failures among the measured metrics (unmeasured ones pass until ``full``)."""
        return self.options.budget.failures(metrics, require_all=full)

    def elapsed_minutes(self) -> float:
        """Minutes since the run started."""
        return (time.perf_counter() - self.started) / 60.0

    def search_minutes(self) -> float:
        """Minutes since the search started (recording and fits excluded)."""
        return (time.perf_counter() - self.search_started) / 60.0

    # -- test fold --------------------------------------------------------------------------

    def evaluate_test(self, setting: Setting) -> dict[str, Any]:
        """The test-fold comparison and full damage of one setting, plus its skip-first variant."""
        n = len(self.test.chunks)
        result = self.compare(self.test, setting, n, intervals=True)
        result.update(self.damage(setting, full=True))
        result["budget_failures"] = self.options.budget.failures(result)
        if setting.positions != "skip-first":
            # SEA alone with the first token left unedited: does the effect live in the sink?
            skip = replace(setting, name=f"{setting.name}-skipfirst", positions="skip-first")
            layout = self.test.layout(n)
            base = mc_from_logprobs(self.logprob(self.test, None, n), layout)
            other = mc_from_logprobs(self.logprob(self.test, Variant(skip), n), layout)
            diff = paired_bootstrap(other[1], base[1], self.options.resamples)
            result["skip_first"] = {
                "mc2": float(np.mean(other[1])),
                "delta_mc2_ci": [diff.mean, diff.low, diff.high],
                "perplexity": self.perplexity(skip),
            }
        fit = self.fit(setting)
        layers = edited_layers(setting, self.info.n_layers)
        ranks = fit.ranks(setting.positive_energy, setting.negative_energy)
        result["k"] = {str(layer): list(ranks[layer]) for layer in layers}
        result["feature_map"] = fit.feature_map.to_dict()
        return result
