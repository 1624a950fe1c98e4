"""The registry API as a Ray Serve deployment: the same FastAPI app, on several replicas.

:func:`registry_application` binds the deployment to one registry. The application builder that
``infra/ray/serve-registry.yaml`` names (``import_path``), which reads the registry from the
config's ``args`` or the environment, is an entry point: :func:`sea_dist.cli.serve_app.build`.
From Python::

    from ray import serve
    from sea_dist.serve.serve_deployment import registry_application

    serve.run(registry_application("s3://bucket/registry", num_replicas=2), route_prefix="/")

Each replica opens the registry read-only (every replica sees the same storage: a shared
folder or an object store). The request limits and the JSON error document are the app's own
(an ASGI middleware), so they hold behind Ray's proxy; only requests that Ray's HTTP proxy
refuses before the app sees them (not HTTP at all, a head over its parser's buffer) get the
proxy's answer instead.
"""

from __future__ import annotations

from ray import serve
from ray.serve import Application, Deployment
from starlette.types import ASGIApp

from sea_dist.registry.filesystem import Registry
from sea_dist.serve.app import create_app

DEFAULT_REPLICAS = 2


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


def registry_application(registry: str, num_replicas: int = DEFAULT_REPLICAS) -> Application:
    """The registry API deployment bound to ``registry``, ready for ``serve.run``.

    Args:
        registry: the registry's storage (absolute folder or fsspec URL) every replica sees.
        num_replicas: how many replicas serve it.
    """
    return REGISTRY_API.options(num_replicas=num_replicas).bind(registry)
