"""Class 6: the HTTP client trusts no server.

``--registry http://...`` pointed at something that is not ``sea-dist registry serve`` (a static
file server over the registry folder, a server with an endless or oversized body, answers of the
wrong shape, an HTML error page, a trickling server) must end in one clean line, exit 2, with
memory bounded by the client's limits, never in a traceback or a silently wrong answer.
All servers are real HTTP servers on loopback.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_outcome import refusal_problems, run_cli
from reliability_workspace import Workspace

from sea_dist.errors import SeaDistError
from sea_dist.registry.client import HttpRegistry
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.responses import MAX_JSON_BYTES

Answer = Callable[[BaseHTTPRequestHandler], None]
SHA = "a" * 64


def _json(data: object, status: int = 200, content_type: str = "application/json") -> Answer:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def _endless(handler: BaseHTTPRequestHandler) -> None:
    """An answer with no length that never ends (until the client hangs up)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    block = b"[" * 65536
    try:
        while True:
            handler.wfile.write(block)
    except OSError:
        pass  # the client stopped reading: what must happen


def _announced_huge(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(50 << 30))
    handler.end_headers()
    try:
        handler.wfile.write(b'{"names": []}')
    except OSError:
        pass


def _trickle(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    try:
        for _ in range(200):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass


class _Scripted(BaseHTTPRequestHandler):
    """Answers each path prefix with a scripted answer; 404 JSON-less page otherwise."""

    protocol_version = "HTTP/1.0"  # the body ends with the connection: no length needed
    script: dict[str, Answer] = {}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        for prefix, answer in self.script.items():
            if path.startswith(prefix):
                answer(self)
                return
        _json(b"<html>not here</html>", 404, "text/html")(self)


@pytest.fixture
def scripted() -> Iterator[Callable[[dict[str, Answer]], str]]:
    """Start a loopback server answering with a script; yields a function script -> URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(script: dict[str, Answer]) -> str:
        handler = type("Handler", (_Scripted,), {"script": script})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class _QuietStatic(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def static_server(workspace: Workspace) -> Iterator[str]:
    """A plain static file server over the registry folder and its parent."""
    handler = functools.partial(_QuietStatic, directory=str(workspace.root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


COMMANDS = [
    ["registry", "list"],
    ["registry", "versions", "demo"],
    ["registry", "resolve", "demo@1"],
    ["registry", "show", "demo@1"],
    ["registry", "aliases", "demo"],
    ["registry", "aliases", "demo", "--history", "prod"],
    ["registry", "diff", "demo@1", "demo@2"],
]


@pytest.mark.bad_input
@pytest.mark.parametrize("suffix", ["", "/registry"])
@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: "-".join(a[1:3]))
def test_static_file_server_is_refused_in_one_line(
    argv: list[str],
    suffix: str,
    static_server: str,
    in_workspace: Workspace,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = run_cli([*argv, "--registry", static_server + suffix], capsys)
    assert not refusal_problems(outcome), refusal_problems(outcome)


@pytest.mark.bad_input
def test_static_file_server_download_writes_nothing(
    static_server: str, in_workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = in_workspace.cwd / "from-static"
    argv = ["registry", "download", "demo@1", str(dest), "--registry", static_server]
    outcome = run_cli(argv, capsys)
    assert not refusal_problems(outcome), refusal_problems(outcome)
    assert not dest.exists()


@pytest.mark.bad_input
def test_endless_body_is_cut_at_the_limit(scripted: Callable[[dict[str, Answer]], str]) -> None:
    url = scripted({"/v1/names": _endless})
    started = time.monotonic()
    with pytest.raises(SeaDistError, match=f"at most {MAX_JSON_BYTES} bytes"):
        HttpRegistry(url).names()
    assert time.monotonic() - started < 60


@pytest.mark.bad_input
def test_announced_huge_body_is_refused_unread(
    scripted: Callable[[dict[str, Answer]], str],
) -> None:
    url = scripted({"/v1/names": _announced_huge})
    with pytest.raises(SeaDistError, match="Content-Length 53687091200"):
        HttpRegistry(url).names()


@pytest.mark.bad_input
def test_trickling_answer_has_a_time_limit(scripted: Callable[[dict[str, Answer]], str]) -> None:
    url = scripted({"/v1/names": _trickle})
    with pytest.raises(SeaDistError, match="complete answer within 1 s"):
        HttpRegistry(url, max_answer_seconds=1).names()


def _resolved(**override: object) -> dict[str, object]:
    return {"name": "demo", "version": 1, "sha256": SHA, "ref": "demo@1", **override}


WRONG_SHAPES: dict[str, tuple[dict[str, Answer], Callable[[HttpRegistry], object], str]] = {
    "names-not-list": ({"/v1/names": _json({"names": "demo"})}, lambda r: r.names(), "'names'"),
    "names-not-names": (
        {"/v1/names": _json({"names": ["../etc"]})},
        lambda r: r.names(),
        "artifact name",
    ),
    "names-array": ({"/v1/names": _json(["demo"])}, lambda r: r.names(), "JSON object"),
    "html": (
        {"/v1/names": _json(b"<html>hi</html>", content_type="text/html")},
        lambda r: r.names(),
        "text/html",
    ),
    "not-json": (
        {"/v1/names": _json(b"{names: [", content_type="application/json")},
        lambda r: r.names(),
        "valid JSON",
    ),
    "deep-json": (
        {"/v1/names": _json(b"[" * 200_000 + b"]" * 200_000)},
        lambda r: r.names(),
        "valid JSON",
    ),
    "versions-missing-sha": (
        {"/v1/names/demo/versions": _json({"versions": [{"name": "demo", "version": 1}]})},
        lambda r: r.versions("demo"),
        "'sha256'",
    ),
    "versions-other-name": (
        {
            "/v1/names/demo/versions": _json(
                {"versions": [{**_resolved(name="evil"), "created_at": "2026-01-01"}]}
            )
        },
        lambda r: r.versions("demo"),
        "rows of 'demo'",
    ),
    "versions-bool-version": (
        {
            "/v1/names/demo/versions": _json(
                {"versions": [{**_resolved(version=True), "created_at": "x"}]}
            )
        },
        lambda r: r.versions("demo"),
        "'version'",
    ),
    "resolve-other-name": (
        {"/v1/resolve/": _json(_resolved(name="other"))},
        lambda r: r.resolve("demo@1"),
        "a version of demo@1",
    ),
    "resolve-other-version": (
        {"/v1/resolve/": _json(_resolved(version=2))},
        lambda r: r.resolve("demo@1"),
        "a version of demo@1",
    ),
    "resolve-bad-sha": (
        {"/v1/resolve/": _json(_resolved(sha256="zz"))},
        lambda r: r.resolve("demo@1"),
        "hex sha256",
    ),
    "resolve-other-prefix": (
        {"/v1/resolve/": _json(_resolved())},
        lambda r: r.resolve("sha256:bbbb"),
        "starts bbbb",
    ),
    "resolve-string-version": (
        {"/v1/resolve/": _json(_resolved(version="1"))},
        lambda r: r.resolve("demo"),
        "'version' of type int",
    ),
    "aliases-string-version": (
        {"/v1/names/demo/aliases": _json({"aliases": {"prod": "1"}})},
        lambda r: r.aliases("demo"),
        "version number",
    ),
    "history-not-objects": (
        {"/v1/names/demo/aliases/prod/history": _json({"history": [1, 2]})},
        lambda r: r.alias_history("demo", "prod"),
        "JSON objects",
    ),
    "diff-no-layers": (
        {"/v1/diff": _json({"a": "demo@1", "b": "demo@2", "identical": False, "fields": {}})},
        lambda r: r.diff("demo@1", "demo@2"),
        "'layers'",
    ),
    "manifest-not-object": (
        {"/v1/resolve/": _json(_resolved()), "/v1/artifacts/": _json([1, 2])},
        lambda r: r.manifest("demo@1"),
        "JSON object",
    ),
    "error-page-html": (
        {"/v1/names": _json(b"<html>" + b"x" * 100_000, 500, "text/html")},
        lambda r: r.names(),
        "HTTP 500",
    ),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_answers_of_the_wrong_shape_are_refused(
    case: str, scripted: Callable[[dict[str, Answer]], str]
) -> None:
    script, call, expect = WRONG_SHAPES[case]
    with pytest.raises(SeaDistError) as raised:
        call(HttpRegistry(scripted(script)))
    message = str(raised.value)
    assert expect in message
    assert "\n" not in message and len(message) < 800


def _proxy_with_bigger_projections(registry: Registry) -> dict[str, Answer]:
    """Serve demo@1 faithfully, except a projections body longer than its manifest states."""
    resolved = registry.resolve("demo@1")
    manifest = registry.storage.read_bytes("demo", "versions", "1", "manifest.json")
    from sea_dist.format.tensors import sha256_hex

    padded = b"\0" * (registry.manifest("demo@1").size_bytes + 4096)

    def file_answer(body: bytes) -> Answer:
        def answer(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/octet-stream")
            handler.send_header("X-Content-SHA256", sha256_hex(body))
            handler.end_headers()
            handler.wfile.write(body)

        return answer

    return {
        "/v1/resolve/": _json(resolved.to_dict()),
        "/v1/artifacts/demo/1/files/manifest.json": file_answer(manifest),
        "/v1/artifacts/demo/1/files/projections.safetensors": file_answer(padded),
    }


@pytest.mark.bad_input
def test_download_reads_no_more_than_the_manifest_states(
    workspace: Workspace, scripted: Callable[[dict[str, Answer]], str], tmp_path: Path
) -> None:
    url = scripted(_proxy_with_bigger_projections(Registry(str(workspace.registry))))
    with pytest.raises(SeaDistError, match="at most"):
        HttpRegistry(url).download("demo@1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.bad_input
def test_download_cap_refuses_before_fetching_projections(
    workspace: Workspace, served: object, tmp_path: Path
) -> None:
    client = HttpRegistry(served.url, max_download_bytes=16)  # type: ignore[attr-defined]
    with pytest.raises(SeaDistError, match="max_download_bytes=16"):
        client.download("demo@1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_real_server_still_passes_every_check(served: object, tmp_path: Path) -> None:
    """The checks are not so strict that the real API fails them."""
    client = HttpRegistry(served.url)  # type: ignore[attr-defined]
    assert "demo" in client.names()
    assert [row["version"] for row in client.versions("demo")] == [1, 2]
    assert client.resolve("demo@prod").version == 1
    assert client.resolve(f"sha256:{client.resolve('demo@1').sha256[:8]}").version == 1
    assert client.aliases("demo") == {"prod": 1}
    assert client.alias_history("demo", "prod")
    assert client.diff("demo@1", "demo@2")["layers"]
    assert client.download("demo@1", tmp_path / "copy").is_dir()
