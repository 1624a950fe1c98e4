"""Which tokens of a model call an edit applies to: the ``positions`` modes of ``apply_edit``.

Which tokens are edited is the ``positions`` mode (:data:`sea_dist.format.recipe.POSITIONS`):

- ``all``: every token (no extra hook).
- ``skip-first``: every token but the first real token of each sequence (the "attention sink",
  whose activations are outliers).
- ``generated``: only answer / generated tokens; the prompt is left unedited.

For the last two, a forward pre-hook on the top-level model works out, once per call, which
positions of the call to edit, from the call's ``attention_mask`` / ``position_ids`` / cache; the
site hooks read it (so the site must be reached through a call of that model):

- ``skip-first`` with a 2D attention mask ``(batch, past + seq)`` (what ``generate`` and
  tokenizers give): a position is the first real token when the mask is 1 there and the running
  count of ones up to it is 1; this handles left and right padding, and in KV-cache decoding steps
  no position is first. Without a mask there is no padding: the token with ``position_ids == 0``
  is the first (what ``generate`` passes when it drops an all-ones mask); without position ids
  either, position 0 of the call is the first token unless a cache is already filled
  (``cache_position`` or the cache's ``get_seq_length()`` say how many tokens came before).
- ``generated`` with prompt lengths set on the handle (:meth:`EditHandle.set_prompt_lengths` or
  ``with handle.prompt_lengths(lengths):``; one count of *real*, non-pad prompt tokens per
  sequence): a position is edited iff it is a real token (mask 1) and the running count of real
  tokens up to and including it exceeds its sequence's prompt length. The 2D mask of a ``generate``
  decoding step covers past and current tokens, so the count is right with left or right padding,
  with or without the KV cache. Without a mask the count is the absolute position + 1 (past tokens
  from the cache). A batch that is a multiple of the lengths (``num_beams`` /
  ``num_return_sequences`` repeat each prompt) repeats each length likewise.
- ``generated`` without prompt lengths: a call whose cache is empty (a plain forward, the prefill
  of ``generate``) is all prompt and nothing is edited; a call whose cache is already filled (the
  decoding steps of ``generate``) is all generated and everything is edited. ``generate`` without
  the cache runs every step as a full forward, so it edits nothing: set prompt lengths for it (and
  for scoring prompt + answer in one forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sea_dist.errors import ConfigError, ModelError, expected_found

PromptLengths = torch.Tensor | Sequence[int]
"""Real (non-pad) prompt tokens per sequence: a ``(batch,)`` integer tensor or a sequence."""


def as_lengths(lengths: PromptLengths) -> torch.Tensor:
    """``(batch,)`` int64 CPU tensor of counts >= 0, or ConfigError."""
    tensor = torch.as_tensor(lengths).detach().to("cpu")
    if tensor.dim() != 1 or tensor.is_floating_point() or tensor.is_complex():
        raise ConfigError(
            expected_found(
                "prompt lengths",
                "a (batch,) integer tensor or sequence",
                f"{tensor.dtype} of shape {tuple(tensor.shape)}",
            )
        )
    if tensor.numel() and int(tensor.min()) < 0:
        raise ConfigError(expected_found("prompt lengths", "counts >= 0", tensor.tolist()))
    return tensor.to(torch.int64)


def _call_tokens(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, int, Any] | None:
    """``(batch, seq, device)`` of the call's ``input_ids`` / ``inputs_embeds``, or None."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    if not isinstance(ids, torch.Tensor):
        ids = kwargs.get("inputs_embeds")
    if not isinstance(ids, torch.Tensor) or ids.dim() < 2:
        return None
    return int(ids.shape[0]), int(ids.shape[1]), ids.device


def _mask_2d(args: tuple[Any, ...], kwargs: dict[str, Any], seq: int) -> torch.Tensor | None:
    """The call's ``(batch, past + seq)`` attention mask, or None (absent or not 2D)."""
    mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    if isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape[-1] >= seq:
        return mask
    return None


def _past_length(kwargs: dict[str, Any]) -> int:
    """Tokens already in the call's KV cache (0 without a cache)."""
    cache_position = kwargs.get("cache_position")
    if isinstance(cache_position, torch.Tensor) and cache_position.numel():
        return int(cache_position.reshape(-1)[0])
    cache = kwargs.get("past_key_values", kwargs.get("cache"))
    if cache is not None and hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    return 0


def _first_token_mask(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """``(batch, seq)`` bool, True at the first real token of each sequence (see module doc)."""
    found = _call_tokens(args, kwargs)
    if found is None:
        return None
    batch, seq, device = found
    mask = _mask_2d(args, kwargs, seq)
    if mask is not None:
        real = mask != 0
        count = real.to(torch.int32).cumsum(dim=-1)
        return (real & (count == 1))[:, -seq:]
    positions = kwargs.get("position_ids")
    if isinstance(positions, torch.Tensor) and positions.shape[-1] == seq:
        # generate() drops an all-ones mask but passes position ids: 0 marks the first token
        return (positions == 0).expand(batch, seq)
    first = torch.zeros(batch, seq, dtype=torch.bool, device=device)
    if _past_length(kwargs) == 0:
        first[:, 0] = True
    return first


def _generated_mask(
    args: tuple[Any, ...], kwargs: dict[str, Any], lengths: torch.Tensor | None
) -> torch.Tensor | bool | None:
    """True where the call's tokens come after the prompt (see module doc); None: no tokens."""
    found = _call_tokens(args, kwargs)
    if found is None:
        return None
    batch, seq, device = found
    if lengths is None:
        return _past_length(kwargs) > 0  # no boundary given: prefill = prompt, decoding = answer
    if lengths.numel() != batch:
        if not lengths.numel() or batch % lengths.numel():
            raise ModelError(
                expected_found(
                    "prompt lengths",
                    f"one per sequence of the call's batch of {batch}",
                    lengths.numel(),
                    "set the lengths of the batch you pass to the model",
                )
            )
        lengths = lengths.repeat_interleave(batch // lengths.numel())  # beams / return sequences
    limit = lengths.to(device)[:, None]
    mask = _mask_2d(args, kwargs, seq)
    if mask is not None:
        real = mask != 0
        count = real.to(torch.int64).cumsum(dim=-1)
        return (real & (count > limit))[:, -seq:]
    past = _past_length(kwargs)
    count = torch.arange(past + 1, past + seq + 1, device=device)
    return count[None, :] > limit


class Positions:
    """Hooks on the top-level model that stash which tokens of the current call to edit.

    ``edit`` is None outside a call (or when the call has no ``input_ids`` / ``inputs_embeds``),
    True (every token) / False (none) when the whole call is uniform, else ``(batch, seq)`` bool.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.prompt_lengths: torch.Tensor | None = None
        self.edit: torch.Tensor | bool | None = None
        self.depth = 0

    def _select(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | bool | None:
        if self.mode == "skip-first":
            first = _first_token_mask(args, kwargs)
            chosen: torch.Tensor | bool | None = None if first is None else ~first
        else:
            chosen = _generated_mask(args, kwargs, self.prompt_lengths)
        if isinstance(chosen, torch.Tensor):
            # one host sync per model call (not per layer) spares every hook the select
            if bool(chosen.all()):
                return True
            if not bool(chosen.any()):
                return False
        return chosen

    def before(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.depth += 1
        if self.depth == 1:  # a model that calls itself (rare) keeps the outer call's mask
            self.edit = self._select(args, kwargs)

    def after(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.edit = None
