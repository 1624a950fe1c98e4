"""Opening a registry and loading an artifact by path or reference: the one place that chooses.

Two implementations of :class:`~sea_dist.registry.protocol.RegistryReader` exist:
:class:`~sea_dist.registry.filesystem.Registry` (a folder or fsspec URL) and
:class:`~sea_dist.registry.client.HttpRegistry` (the ``http(s)://`` address of ``sea-dist
registry serve``); :func:`open_registry` picks one. :func:`load_artifact` loads a folder directly
and resolves a reference through :func:`open_registry`. Nothing else in
:mod:`sea_dist.registry` imports this module (only the package ``__init__`` and the layers
above), so neither implementation depends on the other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sea_dist.registry.filesystem import DEFAULT_REGISTRY, Registry
from sea_dist.registry.loader import Artifact, Framework, load_artifact_folder
from sea_dist.registry.protocol import RegistryReader


def open_registry(url: str, storage_options: Mapping[str, Any] | None = None) -> RegistryReader:
    """A :class:`Registry` for a folder or fsspec URL, or an HTTP client for ``http(s)://``."""
    if str(url).startswith(("http://", "https://")):
        # httpx loads only when a served registry is opened: reading folders needs no client.
        from sea_dist.registry.client import HttpRegistry

        return HttpRegistry(str(url))
    return Registry(url, storage_options=storage_options)


def load_artifact(
    path_or_ref: str | os.PathLike[str],
    registry: str | None = None,
    *,
    framework: Framework = "numpy",
    storage_options: Mapping[str, Any] | None = None,
) -> Artifact:
    """Load and verify an artifact from a folder or a registry reference.

    Args:
        path_or_ref: an artifact folder (local path or fsspec URL holding ``manifest.json``), or a
            reference ``name``, ``name@latest``, ``name@<alias>``, ``name@<version>``,
            ``sha256:<hex prefix>``.
        registry: registry URL used to resolve a reference (a folder, ``s3://...`` or the
            ``http://`` address of ``sea-dist registry serve``); default: a path (anything with
            a ``/`` or an existing folder) is loaded directly, anything else resolves in the
            default registry ``sea-runs/registry``.
        framework: tensors as ``numpy`` arrays or ``torch`` tensors.
        storage_options: fsspec options (e.g. S3 endpoint) for the folder or registry.

    Returns:
        The verified :class:`Artifact`.

    Raises:
        ArtifactError: missing, tampered, truncated or pickle-bearing files.
        RegistryError: the reference cannot be resolved.
    """
    target = os.fspath(path_or_ref)
    # A reference never contains a path separator, so anything path-like is a folder (and a
    # missing folder gets a "missing files" error rather than a confusing reference error).
    if registry is None and (
        "://" in target or "/" in target or os.sep in target or os.path.exists(target)
    ):
        return load_artifact_folder(target, framework, storage_options)
    reader = open_registry(registry or DEFAULT_REGISTRY, storage_options=storage_options)
    return reader.load(target, framework=framework)
