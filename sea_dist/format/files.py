"""The file names of the on-disk formats (docs/formats.md), defined once.

A fit output folder holds ``fit.json`` and ``projections.safetensors`` (optionally
``recipe.json`` and ``evaluation.json``); an artifact version holds ``manifest.json`` and the
same ``projections.safetensors``; a downloaded artifact adds ``manifest.sha256``.
"""

FIT_FILE = "fit.json"
PROJECTIONS_FILE = "projections.safetensors"
MANIFEST_FILE = "manifest.json"
RECIPE_FILE = "recipe.json"
EVALUATION_FILE = "evaluation.json"
ARTIFACT_FILES = (MANIFEST_FILE, PROJECTIONS_FILE)
"""The files of one artifact version, in the order they are published."""
