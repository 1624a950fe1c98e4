"""The read-only HTTP API over a registry (``sea-dist registry serve``): where it used to live.

The API is now a FastAPI app run by uvicorn (:mod:`sea_dist.artifacts.registry_api`, whose
docstring holds the contract: endpoints, headers, error document and status codes). The names
below stay importable from here.
"""

from __future__ import annotations

from sea_dist.artifacts.registry_api.guard import MAX_URL, HttpError
from sea_dist.artifacts.registry_api.server import (
    DEFAULT_PORT,
    BackgroundServer,
    RegistryServer,
    check_bind_host,
    make_server,
)

__all__ = [
    "DEFAULT_PORT",
    "MAX_URL",
    "BackgroundServer",
    "HttpError",
    "RegistryServer",
    "check_bind_host",
    "make_server",
]
