"""What a restart looks like from outside: a model-like view, and the stand-in for skipped blocks.

:class:`RestartModel` is what :meth:`sea_dist.studies.restart.RestartCache.from_layer` returns;
it needs only the small :class:`Restarter` face of the cache, so this module does not import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch


class Restarter(Protocol):
    """What a :class:`RestartModel` needs of its cache."""

    model: torch.nn.Module
    folder: Path

    def run(
        self,
        layer: int,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> Any: ...


class Bypass(torch.nn.Module):
    """Stands in for a skipped decoder block: returns the cached input of the first kept one."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.hidden


class RestartModel(torch.nn.Module):
    """A model-like view of a :class:`~sea_dist.studies.restart.RestartCache` restarting at one
    decoder layer.

    Called like the model (``view(input_ids=..., attention_mask=...)``), it returns the model's
    output with ``.logits``; ``parameters()`` and ``config`` are the model's, so scoring code
    (``sea_dist.evaluate.loglik.score_spans``, ``EncodedPairs.score``) takes it as a model.

    Attributes:
        cache: the cache it reads and fills.
        layer: the first decoder layer that runs on a cached batch.
    """

    cache: Restarter

    def __init__(self, cache: Restarter, layer: int) -> None:
        super().__init__()
        # a plain attribute, not a sub-module: the view owns nothing of the model
        object.__setattr__(self, "cache", cache)
        self.layer = layer

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> Any:
        """See :meth:`sea_dist.studies.restart.RestartCache.run`."""
        return self.cache.run(self.layer, input_ids, attention_mask, position_ids)

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]:
        """The model's parameters (their device is where inputs go)."""
        return self.cache.model.parameters(recurse)

    @property
    def config(self) -> Any:
        """The model's config."""
        return getattr(self.cache.model, "config", None)

    def extra_repr(self) -> str:
        return f"layer={self.layer}, folder={str(self.cache.folder)!r}"
