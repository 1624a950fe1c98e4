"""What a registry offers, as typing protocols: the seam between the registry and its users.

Two implementations satisfy :class:`RegistryReader`: :class:`sea_dist.registry.filesystem.Registry`
(a folder or fsspec URL) and :class:`sea_dist.registry.client.HttpRegistry` (the read-only HTTP
API). Only the former satisfies :class:`WritableRegistry`, which adds the storage that writers
need. Publication (:mod:`sea_dist.registry.publish`), the promotion gate
(:mod:`sea_dist.registry.gate`) and retention (:mod:`sea_dist.registry.retention`) are functions
over these protocols, so none of them imports an implementation;
:func:`sea_dist.registry.access.open_registry` picks one.

This module imports no implementation: only the records the operations take and return.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from sea_dist.format.manifest import Manifest
from sea_dist.registry.loader import Artifact, Framework
from sea_dist.registry.refs import Resolved
from sea_dist.registry.storage import Storage


class RegistryReader(Protocol):
    """The read-only query API shared by the fsspec registry and the HTTP client."""

    url: str

    def names(self) -> list[str]:
        """Names with at least one complete version."""
        ...

    def versions(
        self,
        name: str,
        *,
        model_id: str | None = None,
        dataset: str | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> list[dict[str, Any]]:
        """Summaries of the versions of ``name``, oldest first, filtered."""
        ...

    def resolve(self, ref: str) -> Resolved:
        """Resolve ``name[@latest|@alias|@version]`` or ``sha256:<prefix>`` to one version."""
        ...

    def manifest(self, ref: str) -> Manifest:
        """The manifest of the version ``ref`` resolves to."""
        ...

    def aliases(self, name: str) -> dict[str, int]:
        """User aliases of ``name`` and their versions."""
        ...

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        """Every move of ``alias``, oldest first."""
        ...

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """Compare two versions (:func:`sea_dist.registry.diff.diff_artifacts`)."""
        ...

    def download(self, ref: str, dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Copy a verified version into the local folder ``dest``; returns ``dest``."""
        ...

    def load(self, ref: str, framework: Framework = "numpy") -> Artifact:
        """Resolve ``ref`` and load the verified artifact."""
        ...


class WritableRegistry(RegistryReader, Protocol):
    """A registry with its storage at hand: what publish, the gate and retention work on."""

    storage: Storage

    def complete_versions(self, name: str) -> list[int]:
        """Version numbers of ``name`` that readers can see, ascending."""
        ...
