"""Apply SEA projections to a Hugging Face model: hooks, context manager, fold into weights.

Imports only torch, safetensors and numpy (plus sea-dist's own light modules): a serving image
needs neither ray, dask nor zarr. transformers is imported only by :func:`export_folded`'s check.

- :func:`load_edit`: read projections from a fit output / artifact folder or a registry reference.
- :func:`apply_edit`: removable forward hooks (handle or ``with`` block).
- :func:`fold_into`: bake an ``average`` edit into the site's output projection (handle).
- :func:`export_folded`: save a plain Hugging Face checkpoint with the edit baked in.
"""

from sea_dist.edit.compat import check_compatible, select_layers
from sea_dist.edit.export import export_folded
from sea_dist.edit.fold import FoldHandle, fold_into
from sea_dist.edit.hooks import EditHandle, apply_edit
from sea_dist.edit.loader import load_edit
from sea_dist.edit.projections import LayerProjection, SeaEdit
from sea_dist.edit.transform import LayerOperator, edit_activations

__all__ = [
    "EditHandle",
    "FoldHandle",
    "LayerOperator",
    "LayerProjection",
    "SeaEdit",
    "apply_edit",
    "check_compatible",
    "edit_activations",
    "export_folded",
    "fold_into",
    "load_edit",
    "select_layers",
]
