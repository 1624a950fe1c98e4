"""Read-only HTTP API over a registry (``sea-dist registry serve``), standard library only.

Binds 127.0.0.1 by default. Only GET and HEAD; every answer but a file download is JSON.

Endpoints::

    GET /v1/health                                    {"status": "ok", "registry": url}
    GET /v1/names                                     {"names": [name, ...]}
    GET /v1/names/{name}/versions                     {"name", "versions": [summary, ...]}
          ?model_id=ID&dataset=FPR_PREFIX&after=ISO&before=ISO      (all optional)
    GET /v1/names/{name}/aliases                      {"name", "aliases": {alias: version}}
    GET /v1/names/{name}/aliases/{alias}/history      {"name", "alias", "history": [move, ...]}
    GET /v1/resolve/{ref}                             {"name", "version", "sha256", "ref"}
          ref: name | name@latest | name@alias | name@7 | sha256:<hex prefix> (URL-encoded)
    GET /v1/artifacts/{name}/{selector}/manifest      the manifest JSON (selector: 7, latest, alias)
    GET /v1/artifacts/{name}/{selector}/files/{file}  raw bytes of manifest.json or
                                                      projections.safetensors
    GET /v1/diff?a={ref}&b={ref}                      diff JSON (see sea_dist.artifacts.diff)

Downloads carry ``X-Content-SHA256`` (hex sha256 of the body, taken from the manifest for the
projections), ``ETag`` and ``X-Artifact-Ref``; clients verify the body against it.

Errors: ``{"error": {"status": N, "type": "...", "message": "..."}}`` with 400 (malformed name,
reference, parameter or path traversal attempt, malformed request), 404 (unknown path, name,
version, alias, or a file missing from a published version: type ``MissingArtifactFileError``),
405 (any method but GET/HEAD, unknown methods included), 413 (a request body), 414 (URL over
2048 characters, or a request line over 64 KiB), 431 (a header line over 64 KiB or more than 100
headers), 500 (a damaged artifact, or an internal error whose details go to the server log only).
Errors that ``http.server`` itself detects while parsing the request get the same JSON document.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sea_dist.artifacts.loader import MissingArtifactFileError
from sea_dist.artifacts.manifest import ARTIFACT_FILES, MANIFEST_FILE
from sea_dist.artifacts.refs import NotFoundError, check_name
from sea_dist.artifacts.registry import Registry
from sea_dist.artifacts.tensors import sha256_hex
from sea_dist.errors import ArtifactError, RegistryError, SeaDistError, expected_found

MAX_URL = 2048
MAX_MESSAGE = 300
CHUNK = 1 << 20
DEFAULT_PORT = 8765
log = logging.getLogger(__name__)


class HttpError(Exception):
    """An error answer with a status code."""

    def __init__(self, status: int, message: str, kind: str = "RequestError") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class _Handler(BaseHTTPRequestHandler):
    server_version = "sea-dist-registry/1"
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds per socket read: a stalled client cannot hold a thread forever
    registry: Registry  # set on the subclass made by make_server

    # -- plumbing ----------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data, indent=None, allow_nan=True).encode("utf-8")
        self._send(status, body, "application/json", headers or {})

    def _error(self, status: int, kind: str, message: str) -> None:
        self.close_connection = True
        self._json(
            status,
            {"error": {"status": status, "type": kind, "message": message}},
            {"Connection": "close"},
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer errors detected by ``http.server`` itself with the JSON error document.

        The stdlib calls this for requests it cannot parse (400), a request line over 64 KiB
        (414), a header line over 64 KiB or over 100 headers (431) and a method with no
        ``do_<METHOD>`` (501). The status codes are kept, except that an unknown method gets the
        same 405 as every other method but GET and HEAD (a 5xx would blame the server).
        """
        if self.request_version == "HTTP/0.9":
            # Not a real HTTP/0.9 request but one whose request line did not parse; the stdlib
            # would answer it without a status line or headers, which no client understands.
            self.request_version = self.protocol_version
        if code == HTTPStatus.NOT_IMPLEMENTED:
            self._refuse()
            return
        short, detail = self.responses.get(code, ("Error", ""))
        text = f"{message or short}; {explain or detail}".strip("; ")
        text = " ".join(text.split())  # one line whatever the stdlib put in it
        if len(text) > MAX_MESSAGE:
            text = text[: MAX_MESSAGE - 3] + "..."
        self._error(code, "RequestError", f"HTTP request: {text}")

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        try:
            if len(self.path) > MAX_URL:
                raise HttpError(
                    414, f"URL: expected at most {MAX_URL} characters, found {len(self.path)}"
                )
            if int(self.headers.get("Content-Length") or 0) > 0 or self.headers.get(
                "Transfer-Encoding"
            ):
                raise HttpError(413, "request body: expected none (read-only API), found one")
            self._route()
        except HttpError as error:
            self._error(error.status, error.kind, str(error))
        except (NotFoundError, MissingArtifactFileError) as error:
            self._error(404, type(error).__name__, str(error))
        except ArtifactError as error:
            self._error(500, type(error).__name__, str(error))
        except SeaDistError as error:
            self._error(400, type(error).__name__, str(error))
        except ValueError as error:
            self._error(400, "RequestError", str(error))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            log.exception("internal error on %s", self.path)
            self._error(500, "InternalError", "internal error; see the server log")

    do_HEAD = do_GET

    def _refuse(self) -> None:
        self.close_connection = True  # a body sent with the refused request is never read
        body = json.dumps(
            {
                "error": {
                    "status": 405,
                    "type": "MethodNotAllowed",
                    "message": f"method: expected GET or HEAD (read-only API), "
                    f"found {self.command}",
                }
            }
        ).encode()
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    # -- routes ------------------------------------------------------------------------------

    def _route(self) -> None:
        url = urlsplit(self.path)
        raw = url.path.split("/")
        if raw[:2] != ["", "v1"] or any(part == "" for part in raw[2:]):
            raise HttpError(404, f"path: expected /v1/..., found {url.path!r}", "NotFound")
        parts = [unquote(p) for p in raw[2:]]
        for part in parts:
            if "/" in part or "\\" in part or part in (".", "..") or "\x00" in part:
                raise HttpError(400, f"path segment: expected a name or reference, found {part!r}")
        query = {k: v[-1] for k, v in parse_qs(url.query, max_num_fields=20).items()}
        match parts:
            case ["health"]:
                self._json(200, {"status": "ok", "registry": self.registry.url})
            case ["names"]:
                self._json(200, {"names": self.registry.names()})
            case ["names", name, "versions"]:
                filters = {k: query.get(k) for k in ("model_id", "dataset", "after", "before")}
                versions = self.registry.versions(name, **filters)
                self._json(200, {"name": name, "versions": versions})
            case ["names", name, "aliases"]:
                self._json(200, {"name": name, "aliases": self.registry.aliases(name)})
            case ["names", name, "aliases", alias, "history"]:
                history = self.registry.alias_history(name, alias)
                self._json(200, {"name": name, "alias": alias, "history": history})
            case ["resolve", ref]:
                self._json(200, self.registry.resolve(ref).to_dict())
            case ["artifacts", name, selector, "manifest"]:
                self._file(name, selector, MANIFEST_FILE, as_json=True)
            case ["artifacts", name, selector, "files", file_name]:
                if file_name not in ARTIFACT_FILES:
                    raise HttpError(
                        404,
                        expected_found("file", " or ".join(ARTIFACT_FILES), file_name),
                        "NotFound",
                    )
                self._file(name, selector, file_name)
            case ["diff"]:
                if not query.get("a") or not query.get("b"):
                    raise HttpError(400, "diff: expected query parameters a and b (references)")
                self._json(200, self.registry.diff(query["a"], query["b"]))
            case _:
                raise HttpError(
                    404, f"path: expected a documented endpoint, found {url.path!r}", "NotFound"
                )

    def _file(self, name: str, selector: str, file_name: str, as_json: bool = False) -> None:
        resolved = self.registry.resolve(f"{check_name(name)}@{selector}")
        parts = (resolved.name, "versions", str(resolved.version), file_name)
        storage = self.registry.storage
        headers = {"X-Artifact-Ref": resolved.ref}
        if file_name == MANIFEST_FILE:
            body = self.registry.manifest_bytes(resolved)  # checked against the marker
            digest = sha256_hex(body)
            headers.update({"X-Content-SHA256": digest, "ETag": f'"sha256:{digest}"'})
            self._send(
                200, body, "application/json" if as_json else "application/octet-stream", headers
            )
            return
        try:
            size = storage.size(*parts)
            handle = storage.open_read(*parts)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise MissingArtifactFileError(
                expected_found(
                    f"version {resolved.ref}",
                    f"{file_name} in the registry",
                    "no such file",
                    "the version is damaged; restore the file or publish the fit output again",
                )
            ) from None
        with handle:
            self._stream(resolved.sha256, resolved.ref, file_name, size, handle)

    def _stream(self, sha256: str, ref: str, file_name: str, size: int, handle: Any) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.send_header("X-Content-SHA256", sha256)
        self.send_header("ETag", f'"sha256:{sha256}"')
        self.send_header("X-Artifact-Ref", ref)
        self.send_header("Content-Disposition", f'attachment; filename="{file_name}"')
        self.end_headers()
        if self.command == "HEAD":
            return
        while chunk := handle.read(CHUNK):
            self.wfile.write(chunk)


def make_server(
    registry: Registry, host: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> ThreadingHTTPServer:
    """An HTTP server for ``registry`` (not yet serving; call ``serve_forever``). Port 0 = any."""
    handler = type("RegistryHandler", (_Handler,), {"registry": registry})
    server_class = ThreadingHTTPServer
    if ":" in host:  # an IPv6 literal such as ::1 (the stdlib server is IPv4 only)
        import socket

        class _ServerV6(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        server_class = _ServerV6
    server = server_class((host, port), handler)
    server.daemon_threads = True
    return server


class BackgroundServer:
    """Context manager running :func:`make_server` in a thread (tests, benchmarks, notebooks)."""

    def __init__(self, registry: Registry, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = make_server(registry, host, port)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def check_bind_host(host: str, allow_remote: bool) -> str:
    """Refuse a non-loopback bind address unless explicitly allowed (the API has no auth)."""
    if host in ("127.0.0.1", "localhost", "::1") or allow_remote:
        return host
    raise RegistryError(
        expected_found(
            "serve --host",
            "a loopback address (127.0.0.1)",
            host,
            "add --allow-remote to expose the read-only API",
        )
    )
