"""The registry API as a FastAPI app: ``create_app(registry)`` (the endpoints: the package doc).

The routes only query the registry (:class:`~sea_dist.registry.filesystem.Registry`, read-only);
limits and errors are :class:`~sea_dist.serve.guard.RequestGuard`'s. Answers are
built as responses directly (no response-model serialisation), so a manifest or a diff goes out
byte for byte as the registry's JSON, NaN included; the pydantic models below only document the
shapes in the OpenAPI schema at ``/openapi.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from sea_dist import __version__
from sea_dist.errors import expected_found
from sea_dist.format.artifact import MissingArtifactFileError
from sea_dist.format.files import ARTIFACT_FILES, MANIFEST_FILE
from sea_dist.format.tensors import sha256_hex
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.refs import check_name
from sea_dist.serve.guard import (
    HEAD_KEY,
    HttpError,
    RequestGuard,
    error_document,
    starlette_error,
)

CHUNK = 1 << 20


class Health(BaseModel):
    status: str
    registry: str


class Names(BaseModel):
    names: list[str]


class Versions(BaseModel):
    name: str
    versions: list[dict[str, Any]]


class Aliases(BaseModel):
    name: str
    aliases: dict[str, int]


class History(BaseModel):
    name: str
    alias: str
    history: list[dict[str, Any]]


class ResolvedRef(BaseModel):
    name: str
    version: int
    sha256: str
    ref: str


class ErrorBody(BaseModel):
    status: int
    type: str
    message: str


class ErrorDocument(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorDocument} for code in (400, 404, 405, 413, 414, 431, 500)
}


def _json(data: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, allow_nan=True).encode("utf-8")  # the registry's JSON as is
    return Response(
        body,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def create_app(registry: Registry) -> FastAPI:
    """The read-only API over ``registry`` (an ASGI app: uvicorn, Ray Serve, any ASGI server)."""
    app = FastAPI(
        title="sea-dist registry",
        version=__version__,
        summary="Read-only queries and downloads of versioned SEA projection artifacts.",
        docs_url=None,  # the interactive pages load scripts from a CDN; the schema is enough
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.add_middleware(RequestGuard)

    @app.exception_handler(HTTPException)
    async def _starlette(request: Request, error: HTTPException) -> Response:
        status, kind, message = starlette_error(error.status_code, request.url.path, error.detail)
        return _error(status, kind, message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        status, kind, message = starlette_error(400, request.url.path, error.errors())
        return _error(status, kind, message)

    @app.get("/v1/health", response_model=Health)
    def health() -> Response:
        return _json({"status": "ok", "registry": registry.url})

    @app.get("/v1/names", response_model=Names)
    def names() -> Response:
        return _json({"names": registry.names()})

    @app.get("/v1/names/{name}/versions", response_model=Versions, responses=ERRORS)
    def versions(
        name: str,
        model_id: str | None = None,
        dataset: str | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> Response:
        # An empty parameter counts as absent, as it always has (parse_qs drops blank values).
        found = registry.versions(
            name,
            model_id=model_id or None,
            dataset=dataset or None,
            after=after or None,
            before=before or None,
        )
        return _json({"name": name, "versions": found})

    @app.get("/v1/names/{name}/aliases", response_model=Aliases, responses=ERRORS)
    def aliases(name: str) -> Response:
        return _json({"name": name, "aliases": registry.aliases(name)})

    @app.get(
        "/v1/names/{name}/aliases/{alias}/history",
        response_model=History,
        responses=ERRORS,
    )
    def alias_history(name: str, alias: str) -> Response:
        history = registry.alias_history(name, alias)
        return _json({"name": name, "alias": alias, "history": history})

    @app.get("/v1/resolve/{ref}", response_model=ResolvedRef, responses=ERRORS)
    def resolve(ref: str) -> Response:
        return _json(registry.resolve(ref).to_dict())

    @app.get(
        "/v1/artifacts/{name}/{selector}/manifest",
        response_model=dict[str, Any],
        responses=ERRORS,
    )
    def manifest(name: str, selector: str) -> Response:
        return _file(registry, name, selector, MANIFEST_FILE, as_json=True)

    @app.get(
        "/v1/artifacts/{name}/{selector}/files/{file_name}",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
    )
    def file(name: str, selector: str, file_name: str, request: Request) -> Response:
        if file_name not in ARTIFACT_FILES:
            raise HttpError(
                404, expected_found("file", " or ".join(ARTIFACT_FILES), file_name), "NotFound"
            )
        head = bool(request.scope.get(HEAD_KEY))
        return _file(registry, name, selector, file_name, head=head)

    @app.get("/v1/diff", response_model=dict[str, Any], responses=ERRORS)
    def diff(a: str | None = None, b: str | None = None) -> Response:
        if not a or not b:
            raise HttpError(400, "diff: expected query parameters a and b (references)")
        return _json(registry.diff(a, b))

    return app


def _error(status: int, kind: str, message: str) -> Response:
    return Response(
        error_document(status, kind, message),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", "Connection": "close"},
    )


def _file(
    registry: Registry,
    name: str,
    selector: str,
    file_name: str,
    *,
    head: bool = False,
    as_json: bool = False,
) -> Response:
    resolved = registry.resolve(f"{check_name(name)}@{selector}")
    headers = {"X-Artifact-Ref": resolved.ref, "Cache-Control": "no-store"}
    if file_name == MANIFEST_FILE:
        body = registry.manifest_bytes(resolved)  # checked against the marker
        digest = sha256_hex(body)
        headers.update({"X-Content-SHA256": digest, "ETag": f'"sha256:{digest}"'})
        media = "application/json" if as_json else "application/octet-stream"
        return Response(body, media_type=media, headers=headers)
    parts = (resolved.name, "versions", str(resolved.version), file_name)
    try:
        size = registry.storage.size(*parts)
        handle = None if head else registry.storage.open_read(*parts)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MissingArtifactFileError(
            expected_found(
                f"version {resolved.ref}",
                f"{file_name} in the registry",
                "no such file",
                "the version is damaged; restore the file or publish the fit output again",
            )
        ) from None
    headers.update(
        {
            "Content-Length": str(size),
            "X-Content-SHA256": resolved.sha256,
            "ETag": f'"sha256:{resolved.sha256}"',
            "Content-Disposition": f'attachment; filename="{file_name}"',
        }
    )
    if handle is None:  # HEAD: the headers of the download, no file opened
        return Response(b"", media_type="application/octet-stream", headers=headers)
    return StreamingResponse(
        _chunks(handle), media_type="application/octet-stream", headers=headers
    )
