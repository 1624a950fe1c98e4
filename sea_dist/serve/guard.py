"""Request limits and the JSON error document of the registry API, as one ASGI middleware.

The limits are checked on the ASGI scope, before any route runs, so they hold the same under
uvicorn (``sea-dist registry serve``) and behind Ray Serve's proxy. Every refusal, and every
exception a route raises, becomes ``{"error": {"status", "type", "message"}}`` with
``Connection: close``; an internal error's details go to the server log only.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sea_dist.errors import ArtifactError, SeaDistError
from sea_dist.format.artifact import MissingArtifactFileError
from sea_dist.registry.refs import NotFoundError

MAX_URL = 2048  # characters of the request target (path and query)
MAX_LINE = 65536  # bytes of the request line or of one header line
MAX_HEADERS = 100
MAX_QUERY_FIELDS = 20
MAX_MESSAGE = 300  # characters of a message made from a parser's error
ALLOW = "GET, HEAD"
OUTSIDE_V1 = frozenset({"/openapi.json"})  # the only paths outside /v1 that are served
HEAD_KEY = "sea_dist.head"  # set in the scope of a HEAD request, which the routes see as a GET
log = logging.getLogger(__name__)


class HttpError(Exception):
    """An error answer with a status code and an error type name."""

    def __init__(self, status: int, message: str, kind: str = "RequestError") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def error_document(status: int, kind: str, message: str) -> bytes:
    """The JSON error body: ``{"error": {"status": N, "type": kind, "message": message}}``."""
    return json.dumps({"error": {"status": status, "type": kind, "message": message}}).encode()


def one_line(text: str) -> str:
    """``text`` on one line and at most :data:`MAX_MESSAGE` characters (parser messages)."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def classify(error: BaseException) -> tuple[int, str, str]:
    """The (status, type, message) answer for an exception raised while answering a request."""
    if isinstance(error, HttpError):
        return error.status, error.kind, str(error)
    if isinstance(error, NotFoundError | MissingArtifactFileError):
        return 404, type(error).__name__, str(error)
    if isinstance(error, ArtifactError):  # a damaged artifact: the server's data, not the request
        return 500, type(error).__name__, str(error)
    if isinstance(error, SeaDistError):
        return 400, type(error).__name__, str(error)
    if isinstance(error, ValueError):
        return 400, "RequestError", str(error)
    return 500, "InternalError", "internal error; see the server log"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None


def _target(scope: Scope) -> tuple[str, str]:
    """The raw (still percent-encoded) path and query of the request."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    path = raw.decode("latin-1").split("?", 1)[0]
    return path, bytes(scope.get("query_string", b"")).decode("latin-1")


def check_request(scope: Scope) -> HttpError | None:
    """The refusal for a request, or None: checked in the order the old server checked them."""
    path, query = _target(scope)
    target = len(path) + (len(query) + 1 if query else 0)
    if target > MAX_LINE:
        return HttpError(414, f"request line: expected at most {MAX_LINE} bytes, found {target}")
    if scope.get("http_version", "1.1") not in ("1.0", "1.1"):
        return HttpError(
            505, f"HTTP version: expected 1.0 or 1.1, found {one_line(scope['http_version'])}"
        )
    headers = scope["headers"]
    if len(headers) > MAX_HEADERS:
        return HttpError(431, f"headers: expected at most {MAX_HEADERS}, found {len(headers)}")
    longest = max((len(k) + len(v) + 2 for k, v in headers), default=0)
    if longest > MAX_LINE:
        return HttpError(431, f"header line: expected at most {MAX_LINE} bytes, found {longest}")
    if scope["method"] not in ("GET", "HEAD"):
        return HttpError(
            405,
            f"method: expected GET or HEAD (read-only API), found {one_line(scope['method'])}",
            "MethodNotAllowed",
        )
    if target > MAX_URL:
        return HttpError(414, f"URL: expected at most {MAX_URL} characters, found {target}")
    length = _header(scope, b"content-length")
    # A Content-Length that is not a number is the HTTP parser's to refuse (400).
    announced = int(length) if length and length.strip().isdigit() else 0
    if announced > 0 or _header(scope, b"transfer-encoding") is not None:
        return HttpError(413, "request body: expected none (read-only API), found one")
    return _check_path(path) or _check_query(query)


def _check_path(path: str) -> HttpError | None:
    if path in OUTSIDE_V1:
        return None
    raw = path.split("/")
    if raw[:2] != ["", "v1"] or any(part == "" for part in raw[2:]):
        return HttpError(404, f"path: expected /v1/..., found {path!r}", "NotFound")
    for part in (unquote(p) for p in raw[2:]):
        # Routing works on the decoded path: a decoded "/" would move a segment; refuse it here.
        if "/" in part or "\\" in part or part in (".", "..") or "\x00" in part:
            return HttpError(400, f"path segment: expected a name or reference, found {part!r}")
    return None


def _check_query(query: str) -> HttpError | None:
    try:
        parse_qs(query, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError as error:
        return HttpError(400, f"query: expected at most {MAX_QUERY_FIELDS} fields; {error}")
    return None


async def send_error(
    send: Send, status: int, kind: str, message: str, *, head: bool = False
) -> None:
    """Send the JSON error document and ask for the connection to close."""
    body = error_document(status, kind, message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),  # a refused request's body is never read
    ]
    if status == 405:
        headers.append((b"allow", ALLOW.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class RequestGuard:
    """ASGI middleware: refuses what :func:`check_request` refuses, turns errors into JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        refusal = check_request(scope)
        if refusal is not None:
            await send_error(send, refusal.status, refusal.kind, str(refusal), head=head)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            if head and message["type"] == "http.response.body":
                message = {**message, "body": b""}  # the headers of the GET, no body
            await send(message)

        # HEAD is answered by the GET route (one route per endpoint in the OpenAPI schema); a
        # copy of the scope, since the server keeps its own to know that no body may go out.
        inner = {**scope, "method": "GET", HEAD_KEY: True} if head else scope
        try:
            await self.app(inner, receive, tracked)
        except Exception as error:  # every error becomes the JSON document, none a traceback
            status, kind, message = classify(error)
            if status == 500 and kind == "InternalError":
                log.exception("internal error on %s", _target(scope)[0])
            if started:  # too late for an error answer: the connection is cut short instead
                raise
            await send_error(send, status, kind, message, head=head)


def starlette_error(status: int, path: str, detail: Any) -> tuple[int, str, str]:
    """The answer for an error Starlette raised itself (no route matches, a bad parameter)."""
    if status == 404:
        return 404, "NotFound", f"path: expected a documented endpoint, found {path!r}"
    return status, "RequestError", one_line(f"request: {detail}")
