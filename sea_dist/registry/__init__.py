"""The versioned registry of SEA projection artifacts: publish, resolve, query, load.

The loader (:func:`load_artifact`) needs only numpy, safetensors and fsspec; Parquet (the listing
index) and the HTTP client (httpx) load when first used. The HTTP server is :mod:`sea_dist.serve`.
"""

from sea_dist.format.manifest import Manifest
from sea_dist.registry.access import load_artifact, open_registry
from sea_dist.registry.filesystem import DEFAULT_REGISTRY, Registry
from sea_dist.registry.loader import Artifact, LayerProjections
from sea_dist.registry.protocol import RegistryReader, WritableRegistry
from sea_dist.registry.refs import Resolved, parse_ref

__all__ = [
    "DEFAULT_REGISTRY",
    "Artifact",
    "LayerProjections",
    "Manifest",
    "Registry",
    "RegistryReader",
    "Resolved",
    "WritableRegistry",
    "load_artifact",
    "open_registry",
    "parse_ref",
]
