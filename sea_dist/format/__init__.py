"""On-disk records shared by fit, artifacts, edit and studies (numpy, safetensors and json only).

- :mod:`~sea_dist.format.files`: the file names;
- :mod:`~sea_dist.format.hashing`: every sha256 sea-dist records (bytes, files, model weights);
- :mod:`~sea_dist.format.tensors` and :mod:`~sea_dist.format.tensor_file`: safetensors read with
  strict layout checks (no pickle) and written reproducibly; :mod:`~sea_dist.format.values`:
  what projection tensors must hold;
- :mod:`~sea_dist.format.fit_record` (``fit.json``) and :mod:`~sea_dist.format.seal` (its seals);
- :mod:`~sea_dist.format.manifest` (``manifest.json``) and :mod:`~sea_dist.format.anchors` (the
  registry marker and download digest that pin it);
- :mod:`~sea_dist.format.artifact`: the one artifact reader and verifier;
- :mod:`~sea_dist.format.compat`: the one model-compatibility check;
- :mod:`~sea_dist.format.recipe`: the edit recipe, the evaluation record and the promotion
  gate's rule over them.
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
