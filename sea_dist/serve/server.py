"""``sea-dist registry serve``: the registry API on uvicorn, bound to 127.0.0.1 by default.

:func:`make_server` binds the socket at once (so a bad host or port fails before serving and the
bound port is known, port 0 included) and returns a :class:`RegistryServer` with the interface of
the standard library's servers: ``serve_forever``, ``shutdown``, ``server_close``,
``server_address``. :class:`BackgroundServer` runs one in a thread (tests, notebooks).

Requests that h11 (uvicorn's HTTP parser) refuses before any ASGI app sees them get the API's
JSON error document too (:class:`JsonErrorProtocol`): 400 for a request that is not HTTP, 431
for a request head over the parser's buffer (414 when the request line alone is over it). The
buffer holds a request line and 100 header lines of 64 KiB each, so the per-line and
header-count limits are :mod:`~sea_dist.serve.guard`'s.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from sea_dist.errors import RegistryError, expected_found
from sea_dist.registry.filesystem import Registry
from sea_dist.serve.app import create_app
from sea_dist.serve.guard import (
    ALLOW,
    MAX_HEADERS,
    MAX_LINE,
    check_request,
    error_document,
    one_line,
)

DEFAULT_PORT = 8765
# The request line and MAX_HEADERS header lines of MAX_LINE bytes, each with its CRLF, + CRLF.
MAX_HEAD = (MAX_HEADERS + 1) * (MAX_LINE + 2) + 2
BACKLOG = 2048  # uvicorn's default
READ_TIMEOUT = 30.0  # seconds a connection may stay idle: a stalled client cannot hold it forever


class JsonErrorProtocol(H11Protocol):
    """uvicorn's h11 protocol, answering the requests h11 refuses with the JSON error document.

    The start of each request is kept (up to one request line's worth), so that a request h11
    refuses for a fault of its own (an HTTP/1.1 request with no ``Host``, a Content-Length that is
    not a number) still gets the answer the API's checks give first when they find a fault
    (:func:`~sea_dist.serve.guard.check_request`: 405, 414, 413, ...).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refusal: h11.RemoteProtocolError | None = None
        self._start = bytearray()
        next_event = self.conn.next_event

        def recorded() -> Any:
            try:
                event = next_event()
            except h11.RemoteProtocolError as error:  # uvicorn keeps only a generic message
                self._refusal = error
                raise
            if isinstance(event, h11.Request):
                self._start.clear()
            return event

        self.conn.next_event = recorded  # type: ignore[method-assign]

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and len(self._start) <= MAX_LINE:
            self._start += data[: MAX_LINE + 2 - len(self._start)]
        super().data_received(data)

    def _answer(self) -> tuple[int, str, str]:
        """(status, type, message) for the request h11 refused."""
        error = self._refusal
        status = error.error_status_hint if error is not None else 400
        if status == 431:
            if b"\n" not in self._start:
                return 414, "RequestError", f"request line: expected at most {MAX_LINE} bytes"
            return 431, "RequestError", f"request head: expected at most {MAX_HEAD} bytes"
        if status == 501:  # a transfer coding h11 does not know: a body all the same
            return 413, "RequestError", "request body: expected none (read-only API), found one"
        earlier = _scope_of(bytes(self._start))
        refusal = check_request(earlier) if earlier is not None else None
        if refusal is not None:
            return refusal.status, refusal.kind, str(refusal)
        return 400, "RequestError", f"HTTP request: {error or 'not a valid HTTP request'}"

    def send_400_response(self, msg: str) -> None:
        status, kind, text = self._answer()
        body = error_document(status, kind, one_line(text))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        if status == 405:
            headers.append((b"allow", ALLOW.encode()))
        for event in (
            h11.Response(status_code=status, headers=headers, reason=STATUS_PHRASES[status]),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def _scope_of(head: bytes) -> dict[str, Any] | None:
    """The ASGI scope fields of a request head h11 refused, or None if it has no request line."""
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    fields = lines[0].split(b" ")
    if len(fields) != 3 or not fields[2].startswith(b"HTTP/"):
        return None
    path, _, query = fields[1].partition(b"?")
    headers = [
        (k.strip().lower(), v.strip()) for k, _, v in (ln.partition(b":") for ln in lines[1:])
    ]
    return {
        "method": fields[0].decode("latin-1"),
        "path": path.decode("latin-1"),
        "raw_path": path,
        "query_string": query,
        "http_version": fields[2][5:].decode("latin-1"),
        "headers": headers,
    }


def _config(registry: Registry) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(registry),
        http=JsonErrorProtocol,
        lifespan="off",
        log_config=None,  # the CLI's logging setup stays; uvicorn only sets its loggers' level
        log_level="warning",
        access_log=False,
        server_header=False,
        h11_max_incomplete_event_size=MAX_HEAD,
        timeout_keep_alive=int(READ_TIMEOUT),
        timeout_graceful_shutdown=5,
        backlog=BACKLOG,
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # ::1 and other IPv6 literals
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)  # connections made before uvicorn runs wait instead of failing
    except BaseException:
        sock.close()
        raise
    return sock


class RegistryServer:
    """A bound, not yet serving registry API server (see :func:`make_server`)."""

    def __init__(self, registry: Registry, host: str, port: int) -> None:
        self.socket = _bind(host, port)
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        self._server = uvicorn.Server(_config(registry))
        self._started = threading.Event()
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (any thread) or SIGINT/SIGTERM (the main thread)."""
        self._started.set()
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop serving and wait (up to ``timeout`` s) for :meth:`serve_forever` to return."""
        self._server.should_exit = True
        if self._started.is_set():
            self._stopped.wait(timeout)

    def server_close(self) -> None:
        """Release the socket (idempotent)."""
        self.socket.close()


def make_server(
    registry: Registry, host: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> RegistryServer:
    """A server for ``registry`` on ``host:port`` (port 0 = any free port); raises OSError."""
    return RegistryServer(registry, host, port)


class BackgroundServer:
    """Context manager running :func:`make_server` in a thread (tests, benchmarks, notebooks)."""

    def __init__(self, registry: Registry, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = make_server(registry, host, port)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

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
