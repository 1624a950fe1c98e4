"""Versioned SEA projection artifacts: manifest, safetensors IO, registry, queries, HTTP API.

The loader (:func:`load_artifact`) needs only numpy, safetensors and fsspec; Parquet (the listing
index), diffing and the HTTP server load lazily when used.
"""

from sea_dist.artifacts.loader import Artifact, LayerProjections, load_artifact
from sea_dist.artifacts.manifest import Manifest
from sea_dist.artifacts.refs import Resolved, parse_ref
from sea_dist.artifacts.registry import DEFAULT_REGISTRY, Registry, RegistryReader, open_registry

__all__ = [
    "DEFAULT_REGISTRY",
    "Artifact",
    "LayerProjections",
    "Manifest",
    "Registry",
    "RegistryReader",
    "Resolved",
    "load_artifact",
    "open_registry",
    "parse_ref",
]
