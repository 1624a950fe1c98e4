"""Record SEA activations for a list of demonstrations: pure torch, no Ray and no Zarr.

For each demonstration three vectors per selected layer are read at the configured site:

- positive: prompt + positive completion, at the token selector's span (``last`` token, or the
  ``mean`` over completion tokens);
- negative: the same for prompt + negative completion;
- neutral: ``prompt`` mode reads the last prompt token. A causal model's state there does not
  depend on what follows, so it is read from the positive sequence's forward pass (one pass
  fewer). ``generate`` mode greedily generates up to ``max_new_tokens`` (batched, left padded,
  stopping at EOS), then runs prompt + generated tokens once more and reads the last generated
  token before EOS (``mean``: the mean over the generated tokens).

Forward hooks on the site modules gather only the selected token positions inside the hook, so
no (batch, seq, d) tensor is kept for any layer. Once every selected layer has been read the
forward pass is stopped (the layers above and the LM head are never run).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import torch
from transformers import GenerationConfig

from sea_dist.collect.batching import (
    PaddedBatch,
    PaddingSide,
    Readout,
    TokenSequence,
    completion_span,
    encode_completion,
    encode_prompt,
    length_batches,
    pad_batch,
    pad_ids,
)
from sea_dist.config import SeaConfig
from sea_dist.data.schema import Demonstration
from sea_dist.errors import DataError, ModelError, expected_found
from sea_dist.layers import hidden_size, output_tensor

TARGETS = ("neutral", "positive", "negative")


class Template(Protocol):
    """What recording needs of a prompt template (see :class:`sea_dist.data.PromptTemplate`)."""

    def render(self, prompt: str) -> str: ...

    def completion(self, answer: str) -> str: ...


@dataclass(frozen=True)
class RecordOptions:
    """How activations are recorded.

    Attributes:
        token: ``last`` token or ``mean`` over completion tokens.
        neutral: ``generate`` (greedy generation) or ``prompt`` (last prompt token).
        max_new_tokens: generation length limit in ``generate`` mode.
        batch_size: sequences per forward pass (and prompts per generation batch).
        padding_side: padding of the recording passes (generation always pads on the left).
        stop_early: stop each forward pass once every selected layer has been read.
    """

    token: Literal["last", "mean"] = "last"
    neutral: Literal["generate", "prompt"] = "generate"
    max_new_tokens: int = 16
    batch_size: int = 8
    padding_side: PaddingSide = "right"
    stop_early: bool = True


@dataclass
class Recorded:
    """Activations of ``rows`` demonstrations, in input order.

    Attributes:
        neutral: (rows, n_layers, d) float32.
        positive: (rows, n_layers, d) float32.
        negative: (rows, n_layers, d) float32.
        generated: neutral generations (``''`` in ``prompt`` mode).
        n_tokens: (rows,) int64, real tokens in the recording passes of each row (generation
            itself excluded).
    """

    neutral: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    generated: list[str]
    n_tokens: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """``neutral``/``positive``/``negative`` -> array, as the store writes them."""
        return {"neutral": self.neutral, "positive": self.positive, "negative": self.negative}


class _StopForward(Exception):
    """Raised by the last hook to skip the rest of the model (never leaves this module)."""


class _Capture:
    """Forward hooks that gather readout vectors from the site outputs of one padded batch."""

    def __init__(self, sites: Mapping[int, torch.nn.Module], stop_early: bool) -> None:
        self.sites = dict(sites)
        self.stop_early = stop_early
        self.batch: PaddedBatch | None = None
        self.values: dict[int, torch.Tensor] = {}

    def _read(self, layer: int, output: Any) -> None:
        batch = self.batch
        if batch is None or layer in self.values:
            return
        size, width = batch.input_ids.shape
        hidden = output_tensor(output, batch_shape=(size, width))
        starts = batch.starts.to(hidden.device)
        stops = batch.stops.to(hidden.device)
        if batch.single_token:
            rows = torch.arange(size, device=hidden.device)[:, None]
            picked = hidden[rows, starts]  # (B, K, d), a copy
        else:
            columns = torch.arange(width, device=hidden.device)
            inside = (columns >= starts[..., None]) & (columns < stops[..., None])  # (B, K, T)
            weights = inside.float() / (stops - starts).clamp(min=1)[..., None].float()
            # Pads may hold anything (even NaN): zero them so 0 * pad stays 0.
            real = batch.attention_mask.to(hidden.device).bool()[..., None]
            picked = torch.bmm(weights, hidden.float().masked_fill(~real, 0.0))
        self.values[layer] = picked.float()
        if self.stop_early and len(self.values) == len(self.sites):
            raise _StopForward

    @contextmanager
    def hooks(self) -> Iterator[None]:
        handles = [
            module.register_forward_hook(
                lambda _module, _args, output, layer=layer: self._read(layer, output)
            )
            for layer, module in self.sites.items()
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


class ActivationRecorder:
    """Records neutral/positive/negative activations with one loaded model.

    Args:
        model: a Hugging Face causal LM in eval mode.
        tokenizer: its tokenizer (``pad_token_id`` or ``eos_token_id`` must be set).
        sites: layer index -> module whose output is the site (see
            :func:`sea_dist.layers.site_modules`); axis 1 of the results follows ascending
            layer order.
        template: renders prompts and completions.
        options: token selector, neutral mode, batching.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        sites: Mapping[int, torch.nn.Module],
        template: Template,
        options: RecordOptions,
    ) -> None:
        if not sites:
            raise ModelError(expected_found("sites", "at least one site module", "none"))
        self.model = model
        self.tokenizer = tokenizer
        self.layers = tuple(sorted(sites))
        self.template = template
        self.options = options
        self.capture = _Capture({layer: sites[layer] for layer in self.layers}, options.stop_early)
        # The pad id only fills masked positions; any valid id works when none is set.
        pad = tokenizer.pad_token_id
        pad = tokenizer.eos_token_id if pad is None else pad
        self.pad_id = int(pad) if pad is not None else 0
        self.eos_ids = _eos_ids(model, tokenizer)
        config = getattr(model, "config", None)
        self.max_positions = getattr(config, "max_position_embeddings", None)
        self.d_model = hidden_size(model)

    @torch.inference_mode()
    def record(self, demos: Sequence[Demonstration]) -> Recorded:
        """Record the three activations of every demonstration.

        Args:
            demos: the rows to record, in store order.

        Returns:
            :class:`Recorded` with arrays of shape (len(demos), n_layers, d), float32.

        Raises:
            DataError: a completion that tokenises to nothing, or a sequence longer than the
                model's context.
        """
        sequences, generated = self.sequences(demos)
        return self.record_sequences(len(demos), sequences, generated)

    @torch.inference_mode()
    def sequences(self, demos: Sequence[Demonstration]) -> tuple[list[TokenSequence], list[str]]:
        """The token sequences the recording passes run (generating first in ``generate`` mode).

        Returns:
            ``(sequences, generated)``: prompt + positive and prompt + negative of each row (in
            ``prompt`` mode the positive one also carries the neutral readout), then in
            ``generate`` mode prompt + generated tokens; and the generated texts (``''`` in
            ``prompt`` mode).
        """
        opts = self.options
        prompts = [encode_prompt(self.tokenizer, self.template.render(d.prompt)) for d in demos]
        sequences: list[TokenSequence] = []
        for row, (demo, prompt) in enumerate(zip(demos, prompts)):
            for target in ("positive", "negative"):
                answer = self.template.completion(getattr(demo, target))
                ids = prompt + encode_completion(self.tokenizer, answer, f"{demo.id} {target}")
                start, stop = completion_span(len(prompt), len(ids), opts.token)
                readouts = [Readout(row, target, start, stop)]
                if target == "positive" and opts.neutral == "prompt":
                    readouts.append(Readout(row, "neutral", len(prompt) - 1, len(prompt)))
                sequences.append(TokenSequence(ids, readouts))
        self._check_lengths(demos, sequences)
        generated = [""] * len(demos)
        if opts.neutral == "generate":
            new_tokens = self.generate(prompts)
            for row, (prompt, new) in enumerate(zip(prompts, new_tokens)):
                start, stop = completion_span(len(prompt), len(prompt) + len(new), opts.token)
                readout = Readout(row, "neutral", start, stop)
                sequences.append(TokenSequence(prompt + new, [readout]))
                generated[row] = self.tokenizer.decode(new, skip_special_tokens=True)
            self._check_lengths(demos, sequences[2 * len(demos) :])
        return sequences, generated

    def _check_lengths(
        self, demos: Sequence[Demonstration], sequences: list[TokenSequence]
    ) -> None:
        if not isinstance(self.max_positions, int):
            return
        for sequence in sequences:
            if len(sequence.ids) > self.max_positions:
                demo = demos[sequence.readouts[0].row]
                raise DataError(
                    f"demonstration {demo.id!r}: expected at most {self.max_positions} tokens "
                    f"(the model's context), found {len(sequence.ids)}; shorten or drop the row"
                )

    @torch.inference_mode()
    def record_sequences(
        self, rows: int, sequences: list[TokenSequence], generated: list[str]
    ) -> Recorded:
        """Run the recording passes of :meth:`sequences` output (e.g. at another site's modules).

        Lets one generation serve several recorders: the neutral generations do not depend on
        which site is read.
        """
        shape = (rows, len(self.layers), self.d_model)
        out = {target: np.zeros(shape, dtype=np.float32) for target in TARGETS}
        n_tokens = np.zeros(rows, dtype=np.int64)
        for sequence in sequences:
            n_tokens[sequence.readouts[0].row] += len(sequence.ids)
        for batch in length_batches(sequences, self.options.batch_size):
            padded = pad_batch(batch, self.pad_id, self.options.padding_side)
            values = self.forward(padded)  # (B, K, n_layers, d)
            for b, readouts in enumerate(padded.readouts):
                for k, readout in enumerate(readouts):
                    out[readout.target][readout.row] = values[b, k]
        return Recorded(
            neutral=out["neutral"],
            positive=out["positive"],
            negative=out["negative"],
            generated=generated,
            n_tokens=n_tokens,
        )

    def forward(self, batch: PaddedBatch) -> np.ndarray:
        """Run one padded batch and return its readouts.

        Returns:
            (B, K, n_layers, d) float32: for sequence ``b`` and readout slot ``k``, the site
            activations of every selected layer in ascending layer order.
        """
        device = _device(self.model)
        self.capture.batch = batch
        self.capture.values = {}
        try:
            with self.capture.hooks():
                self.model(
                    input_ids=batch.input_ids.to(device),
                    attention_mask=batch.attention_mask.to(device),
                    position_ids=batch.position_ids.to(device),
                    use_cache=False,
                )
        except _StopForward:
            pass
        finally:
            self.capture.batch = None
        missing = [layer for layer in self.layers if layer not in self.capture.values]
        if missing:
            raise ModelError(
                expected_found(
                    "site modules",
                    "called during the forward pass",
                    missing,
                    "check collect.site / site_template for this architecture",
                )
            )
        stacked = torch.stack([self.capture.values[layer] for layer in self.layers], dim=2)
        self.capture.values = {}
        return stacked.cpu().numpy()

    def generate(self, prompts: Sequence[list[int]]) -> list[list[int]]:
        """Greedy-generate up to ``max_new_tokens`` for each prompt, batched and left padded.

        Returns:
            The generated ids of each prompt, cut before the first EOS (EOS excluded).
        """
        device = _device(self.model)
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=self.options.max_new_tokens,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids) or None,
        )
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        result: list[list[int]] = [[] for _ in prompts]
        size = self.options.batch_size
        for begin in range(0, len(order), size):
            chunk = order[begin : begin + size]
            ids, mask, _ = pad_ids([prompts[i] for i in chunk], self.pad_id, "left")
            output = self.model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config
            )
            new = output[:, ids.shape[1] :].tolist()
            for i, tokens in zip(chunk, new):
                cut = next((j for j, t in enumerate(tokens) if t in self.eos_ids), len(tokens))
                result[i] = [int(t) for t in tokens[:cut]]
        return result


def record_demonstrations(
    model: Any,
    tokenizer: Any,
    sites: Mapping[int, torch.nn.Module],
    template: Template,
    demos: Sequence[Demonstration],
    options: RecordOptions | None = None,
) -> Recorded:
    """Record activations of ``demos`` (see :class:`ActivationRecorder`); one-call form."""
    recorder = ActivationRecorder(model, tokenizer, sites, template, options or RecordOptions())
    return recorder.record(demos)


def record_options(config: SeaConfig) -> RecordOptions:
    """The recording options a config asks for."""
    c = config.collect
    return RecordOptions(
        token=c.token,
        neutral=c.neutral,
        max_new_tokens=c.max_new_tokens,
        batch_size=c.batch_size,
    )
