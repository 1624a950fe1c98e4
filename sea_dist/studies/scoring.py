"""Scores of one variant on one question set, cached on disk, and its damage measurements.

:class:`VariantScorer` applies an edit (with its setting's alpha and positions) to the loaded
model, scores pre-tokenised ``(prompt, answer)`` pairs and measures capability (perplexity,
built-in accuracy, greedy answer rate) under it. Every result is stored under a key in a
:class:`ScoreCache`, so an interrupted study resumes and a setting scored once is never scored
again. Log-likelihood scoring goes through the exact restart cache
(:mod:`sea_dist.studies.restart`) from the first edited layer when one is configured.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sea_dist.edit import apply_edit
from sea_dist.edit.projections import SeaEdit
from sea_dist.evaluate.capability import greedy_answers
from sea_dist.evaluate.loglik import EncodedPairs
from sea_dist.evaluate.perplexity import perplexity
from sea_dist.studies.space import Setting

log = logging.getLogger(__name__)


class ScoreCache:
    """``.npz`` files keyed by name in one folder, written atomically (a rerun resumes)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_.+@~" else "_" for c in key)
        return self.folder / f"{safe}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError):  # a torn file from a killed run: recompute it
            log.warning("ignoring unreadable cache file %s", path)
            return None

    def put(self, key: str, **arrays: np.ndarray) -> None:
        """Store ``arrays`` under ``key`` (temp file + rename)."""
        path = self._path(key)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(path)


class VariantScorer:
    """Scores variants of the loaded model (see the module doc).

    Args:
        loaded: a :class:`sea_dist.models.LoadedModel`.
        cache: where results are kept.
        batch_size: sequences per forward pass.
        restart: a :class:`sea_dist.studies.restart.RestartCache` (None: full forwards).
    """

    def __init__(
        self, loaded: Any, cache: ScoreCache, batch_size: int, restart: Any = None
    ) -> None:
        self.loaded = loaded
        self.cache = cache
        self.batch_size = batch_size
        self.restart = restart
        self.forward_seconds = 0.0

    @contextlib.contextmanager
    def applied(self, edit: SeaEdit | None, setting: Setting | None) -> Iterator[Any]:
        """Install ``edit`` with the setting's alpha and positions; yields a ``before_batch``.

        ``before_batch`` (None unless the setting edits ``generated`` positions) tells the hooks
        each batch's prompt lengths, so only answer tokens are edited.
        """
        if edit is None or setting is None:
            yield None
            return

        handle = apply_edit(
            self.loaded, edit, layers="all", alpha=setting.alpha, positions=setting.positions
        )
        try:
            yield handle.prompt_lengths if setting.positions == "generated" else None
        finally:
            handle.remove()

    def _scorer(self, edit: SeaEdit | None) -> Any:
        if self.restart is None:
            return self.loaded.model
        if edit is None:
            # the unedited pass restarts from the lowest capture layer: its first (full) pass
            # saves the inputs of every capture layer, so no edited setting needs one
            layers = self.restart.capture_layers
            return self.restart.from_layer(min(layers)) if layers else self.loaded.model
        return self.restart.from_layer(min(edit.layer_indices))

    def logprob(
        self,
        key: str,
        pairs: EncodedPairs,
        edit: SeaEdit | None,
        setting: Setting | None,
    ) -> np.ndarray:
        """``(n_pairs,)`` summed answer log-probabilities under the variant (cached by key)."""
        cached = self.cache.get(key)
        if cached is not None:
            return cached["logprob"]
        with self.applied(edit, setting) as before_batch:
            scores = pairs.score(self._scorer(edit), self.batch_size, before_batch)
        self.cache.put(key, logprob=scores.logprob)
        return scores.logprob

    def perplexity(
        self, key: str, texts: list[str], edit: SeaEdit | None, setting: Setting | None
    ) -> float:
        """Held-out perplexity under the variant (cached).

        With ``generated`` positions each text counts as one prompt token followed by generated
        text (every token after the first edited): the conservative reading, since plain text
        has no prompt and a zero-length answer would hide all damage.
        """
        cached = self.cache.get(key)
        if cached is not None:
            return float(cached["perplexity"])
        with self.applied(edit, setting) as before_batch:
            value = perplexity(
                self._scorer(edit),
                self.loaded.tokenizer,
                texts,
                self.batch_size,
                before_batch=before_batch,
            ).perplexity
        self.cache.put(key, perplexity=np.asarray(value))
        return value

    def answers(
        self,
        key: str,
        prompts: list[str],
        edit: SeaEdit | None,
        setting: Setting | None,
        max_new_tokens: int,
    ) -> list[str]:
        """Greedy answers to ``prompts`` under the variant (cached)."""
        cached = self.cache.get(key)
        if cached is not None:
            return [str(text) for text in cached["answers"]]
        with self.applied(edit, setting):
            texts = greedy_answers(
                self.loaded.model,
                self.loaded.tokenizer,
                prompts,
                batch_size=max(self.batch_size, 16),
                max_new_tokens=max_new_tokens,
            )
        self.cache.put(key, answers=np.asarray(texts, dtype=str))
        return texts
