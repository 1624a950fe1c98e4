"""Raw HTTP/1.1 requests over a socket, so malformed and oversized requests reach the server as is.

``http.client`` and ``urllib`` normalise or refuse much of what an attacker can send (huge request
lines, a hundred headers, unknown methods); a socket does not.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    """A parsed answer: status, lower-cased headers, body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send_raw(url: str, head: bytes, body: bytes = b"", timeout: float = 15.0) -> Response:
    """Send ``head`` (request line and headers, without the blank line) and ``body``.

    ``Connection: close`` is added so the answer ends with the connection.
    """
    parts = urlsplit(url)
    request = head + b"\r\nConnection: close\r\n\r\n" + body
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything; read the answer
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return Response(status, headers, payload)
