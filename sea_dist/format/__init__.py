"""On-disk records shared by fit, artifacts, edit and studies (numpy, safetensors and json only).

So far: the edit recipe and the evaluation record an artifact carries
(:mod:`sea_dist.format.recipe`), and the promotion gate's rule over them.
"""

from sea_dist.format.recipe import (
    POSITIONS,
    DamageBudget,
    EditRecipe,
    EvaluationRecord,
    gate_failures,
    worse_than,
)

__all__ = [
    "POSITIONS",
    "DamageBudget",
    "EditRecipe",
    "EvaluationRecord",
    "gate_failures",
    "worse_than",
]
