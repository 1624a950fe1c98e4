"""The registry API as a Ray Serve deployment: the same FastAPI app, on several replicas.

``infra/ray/serve-registry.yaml`` deploys it with ``serve deploy`` / ``serve run``; its
``import_path`` is :func:`build`, an application builder that takes the registry URL from the
config's ``args`` or from ``$SEA_DIST_REGISTRY``. From Python::

    from ray import serve
    from sea_dist.serve.serve_deployment import build

    serve.run(build({"registry": "s3://bucket/registry", "num_replicas": 2}), route_prefix="/")

Each replica opens the registry read-only (every replica sees the same storage: a shared
folder or an object store). The request limits and the JSON error document are the app's own
(an ASGI middleware), so they hold behind Ray's proxy; only requests that Ray's HTTP proxy
refuses before the app sees them (not HTTP at all, a head over its parser's buffer) get the
proxy's answer instead.
"""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from ray.serve import Application, Deployment
from starlette.types import ASGIApp

from sea_dist.errors import RegistryError, expected_found
from sea_dist.registry.filesystem import Registry
from sea_dist.serve.app import create_app

DEFAULT_REPLICAS = 2
REGISTRY_ENV = "SEA_DIST_REGISTRY"


class RegistryReplica:
    """One replica: the registry opened read-only, the FastAPI app of :func:`create_app`."""

    def __init__(self, registry: str) -> None:
        self.registry = Registry(registry)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return create_app(self.registry)


# Replicas wait on storage, not on the CPU: half a CPU each, so two fit on a small node.
REGISTRY_API: Deployment = serve.deployment(
    name="sea-dist-registry",
    num_replicas=DEFAULT_REPLICAS,
    ray_actor_options={"num_cpus": 0.5},
)(serve.ingress()(RegistryReplica))


def registry_url(args: dict[str, Any]) -> str:
    """The registry to serve: ``args["registry"]`` or ``$SEA_DIST_REGISTRY``; never a default.

    Every replica must see the same registry, so a path relative to a replica's working
    directory is as wrong as no registry at all: both are refused.
    """
    url = str(args.get("registry") or os.environ.get(REGISTRY_ENV) or "")
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
    """Application builder for Ray Serve configs (``import_path: ...serve_deployment:build``).

    Args:
        args: ``registry`` (folder or fsspec URL; default ``$SEA_DIST_REGISTRY``) and optional
            ``num_replicas`` (default 2).
    """
    replicas = int(args.get("num_replicas", DEFAULT_REPLICAS))
    return REGISTRY_API.options(num_replicas=replicas).bind(registry_url(args))
