"""Load the demonstrations a :class:`~sea_dist.config.DataConfig` names.

Dispatches on ``config.source``, resolves default benchmark paths under the data folder, and
applies ``config.limit`` (the first N rows, in file order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sea_dist.data.bbq import bbq_demonstrations
from sea_dist.data.builtin import load_builtin_demonstrations
from sea_dist.data.generic import load_table
from sea_dist.data.halueval import halueval_demonstrations
from sea_dist.data.locate import default_path
from sea_dist.data.schema import Demonstration
from sea_dist.data.truthfulqa import truthfulqa_demonstrations
from sea_dist.errors import DataError

if TYPE_CHECKING:  # config imports yaml; data needs only the attributes
    from sea_dist.config import DataConfig


def split_holdout(
    demos: Sequence[Demonstration], share: float
) -> tuple[list[Demonstration], list[Demonstration]]:
    """``(fit, held_out)``: ``round(share * n)`` demonstrations held out, the ones whose id
    hashes lowest (stable when rows are added or reordered); both keep the input order."""
    n_out = round(share * len(demos))
    if n_out == 0:
        return list(demos), []
    ranked = sorted(demos, key=lambda d: hashlib.sha256(f"holdout:{d.id}".encode()).hexdigest())
    held = {d.id for d in ranked[:n_out]}
    return [d for d in demos if d.id not in held], [d for d in demos if d.id in held]


def load_heldout_demonstrations(config: DataConfig) -> list[Demonstration]:
    """The demonstrations ``data.holdout`` keeps out of the fit (empty when it is 0)."""
    return split_holdout(_load_all(config), config.holdout)[1]


def load_demonstrations(config: DataConfig) -> list[Demonstration]:
    """Load, validate and limit the demonstrations described by ``config``: the ones to fit.

    Args:
        config: ``source`` picks the loader; ``path`` the file (``builtin`` ignores it);
            ``positive``/``negative`` the TruthfulQA answers; ``columns`` the generic mapping;
            ``limit`` keeps the first N rows; ``holdout`` then keeps a share out of the fit
            (:func:`load_heldout_demonstrations`).

    Returns:
        Demonstrations in file order with unique ids.

    Raises:
        DataError: any problem with the file or its rows (see the loaders).
    """
    return split_holdout(_load_all(config), config.holdout)[0]


def _load_all(config: DataConfig) -> list[Demonstration]:
    """Every demonstration of the source, limited, before the hold-out split."""
    source = config.source
    demos: list[Demonstration]
    if source == "builtin":
        demos = load_builtin_demonstrations()
    else:
        path = Path(config.path).expanduser() if config.path else default_path(source, config)
        if source == "truthfulqa":
            demos = truthfulqa_demonstrations(path, config.positive, config.negative)
        elif source == "bbq":
            demos = bbq_demonstrations(path)
        elif source == "halueval":
            demos = halueval_demonstrations(path)
        elif source in ("jsonl", "csv", "parquet"):
            demos = load_table(path, source, config.columns)
        else:
            raise DataError(
                f"data.source: expected builtin, truthfulqa, bbq, halueval, jsonl, "
                f"csv or parquet, found {source!r}; fix data.source"
            )
    return demos[: config.limit] if config.limit is not None else demos
