"""The Ray Serve application builder of the registry API (an entry point, like a command).

``infra/ray/serve-registry.yaml`` names :func:`build` as its ``import_path``; Ray Serve calls it
with the config's ``args``. The registry URL comes from ``args["registry"]`` or
``$SEA_DIST_REGISTRY`` (reading the environment is the entry layer's job); the deployment itself
is :mod:`sea_dist.serve.serve_deployment`.
"""

from __future__ import annotations

import os
from typing import Any

from ray.serve import Application

from sea_dist.cli.environment import REGISTRY_ENV, registry_from_environment
from sea_dist.errors import RegistryError, expected_found
from sea_dist.serve.serve_deployment import DEFAULT_REPLICAS, registry_application


def registry_url(args: dict[str, Any]) -> str:
    """The registry to serve: ``args["registry"]`` or ``$SEA_DIST_REGISTRY``; never a default.

    Every replica must see the same registry, so a path relative to a replica's working
    directory is as wrong as no registry at all: both are refused.

    Raises:
        RegistryError: no registry, a relative path, or an HTTP registry API instead of storage.
    """
    url = str(args.get("registry") or registry_from_environment() or "")
    if url.startswith(("http://", "https://")):
        raise RegistryError(
            expected_found(
                "serve-registry registry",
                "a folder or fsspec URL (the storage itself)",
                url,
                "point it at the registry's storage, not at another registry API",
            )
        )
    if not url or ("://" not in url and not os.path.isabs(url)):
        raise RegistryError(
            expected_found(
                "serve-registry registry",
                f"an absolute folder or fsspec URL (args.registry or ${REGISTRY_ENV})",
                url or "nothing",
                "set it in infra/ray/serve-registry.yaml or the environment",
            )
        )
    return url


def build(args: dict[str, Any]) -> Application:
    """Application builder for Ray Serve configs (``import_path: sea_dist.cli.serve_app:build``).

    Args:
        args: ``registry`` (folder or fsspec URL; default ``$SEA_DIST_REGISTRY``) and optional
            ``num_replicas`` (default 2).
    """
    replicas = int(args.get("num_replicas", DEFAULT_REPLICAS))
    return registry_application(registry_url(args), num_replicas=replicas)
