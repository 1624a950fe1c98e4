"""sea-dist data fetch: download from a real loopback HTTP server, verified and atomic.

The server is real (``http.server`` on 127.0.0.1); the only stand-in is the pinned source table,
replaced by small synthetic files with their own sha256, because the real sources (GitHub) cannot
be reached from the test machine. That table is the boundary.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sea_dist.cli import main
from sea_dist.cli.environment import apply_environment
from sea_dist.config import DataConfig, SeaConfig
from sea_dist.data import locate
from sea_dist.data.fetch import data_cache_dir, fetch_source
from sea_dist.data.sources import SOURCES, DataSource, SourceFile
from sea_dist.errors import DataError

ONE = b"Type,Question\n" + b"x,What is one?\n" * 40
TWO = b'{"context": "c", "label": 1}\n' * 30
ENDLESS_CAP = 64 << 20  # the server gives up after this many bytes, so a bug cannot hang


@dataclass
class Route:
    body: bytes
    mode: str = "ok"  # ok | truncated | short | endless | declared-more


@dataclass
class Server:
    url: str
    routes: dict[str, Route]
    requests: list[str] = field(default_factory=list)
    endless_sent: list[int] = field(default_factory=list)
    endless_done: threading.Event = field(default_factory=threading.Event)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_state: Server

    def do_GET(self) -> None:
        state = self.server_state
        state.requests.append(self.path)
        route = state.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        self.send_response(200)
        if route.mode in ("ok", "truncated"):
            self.send_header("Content-Length", str(len(route.body)))
        elif route.mode == "declared-more":
            self.send_header("Content-Length", str(len(route.body) * 2))
        self.end_headers()
        if route.mode == "endless":
            self._endless(route.body)
        elif route.mode in ("truncated", "short"):
            self.wfile.write(route.body[: len(route.body) // 2])  # then close: HTTP/1.0
        else:
            self.wfile.write(route.body)

    def _endless(self, block: bytes) -> None:
        sent = 0
        try:
            while sent < ENDLESS_CAP:
                self.wfile.write(block)
                sent += len(block)
        except OSError:
            pass  # the client hung up: what the test wants
        finally:
            self.server_state.endless_sent.append(sent)
            self.server_state.endless_done.set()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _pinned(relative: str, body: bytes) -> SourceFile:
    return SourceFile(relative, f"files/{relative}", hashlib.sha256(body).hexdigest(), len(body))


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No data folder, cache or source URL from the caller's environment."""
    for name in (
        "SEA_DIST_DATA_DIR",
        "SEA_DIST_DATA_CACHE",
        "SEA_DIST_CACHE",
        "SEA_DIST_DATA_SOURCE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "work" / "project").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "project")
    monkeypatch.setattr(locate, "REPO_ROOT", tmp_path / "work" / "project")
    return tmp_path


@pytest.fixture
def server(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A loopback server with the synthetic sources ``truthfulqa`` (two files) and ``bbq``."""
    files = {"truthfulqa": [("truthfulqa/one.csv", ONE), ("truthfulqa/two.csv", ONE[::-1])]}
    files["bbq"] = [("bbq/two.jsonl", TWO)]
    routes = {}
    for name, entries in files.items():
        pins = tuple(_pinned(relative, body) for relative, body in entries)
        monkeypatch.setitem(SOURCES, name, DataSource(name, "http://unused.invalid", pins, "test"))
        routes.update({f"/files/{relative}": Route(body) for relative, body in entries})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    state = Server(f"http://127.0.0.1:{httpd.server_address[1]}", routes)
    _Handler.server_state = state
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def _files_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_good_download_is_verified_cached_and_not_fetched_twice(
    server: Server, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    fetched = fetch_source("truthfulqa", cache_dir=cache, base_url=server.url)
    assert [(f.relative_path, f.downloaded) for f in fetched] == [
        ("truthfulqa/one.csv", True),
        ("truthfulqa/two.csv", True),
    ]
    assert (cache / "truthfulqa" / "one.csv").read_bytes() == ONE
    assert (cache / "truthfulqa" / "two.csv").read_bytes() == ONE[::-1]
    assert len(_files_below(cache)) == 2  # no temporary file left beside them
    again = fetch_source("truthfulqa", cache_dir=cache, base_url=server.url)
    assert [f.downloaded for f in again] == [False, False]
    assert len(server.requests) == 2


def test_a_corrupt_cached_file_is_replaced(server: Server, tmp_path: Path) -> None:
    target = tmp_path / "cache" / "bbq" / "two.jsonl"
    target.parent.mkdir(parents=True)
    target.write_bytes(TWO[:-1] + b"!")
    (entry,) = fetch_source("bbq", cache_dir=tmp_path / "cache", base_url=server.url)
    assert entry.downloaded
    assert target.read_bytes() == TWO


@pytest.mark.parametrize(
    ("mode", "body", "message"),
    [
        ("ok", TWO[:-1] + b"!", "sha256"),  # same length, other bytes
        ("truncated", TWO, f"found '{len(TWO) // 2} bytes'"),  # closed before Content-Length
        ("short", TWO, f"found '{len(TWO) // 2} bytes'"),  # no Content-Length, closed early
        ("declared-more", TWO, "bytes declared"),  # refused on the header, before the body
        ("endless", TWO, f"more than {len(TWO)} bytes"),  # never stops: cut at the limit
    ],
)
def test_a_bad_download_leaves_nothing_in_the_cache(
    server: Server, tmp_path: Path, mode: str, body: bytes, message: str
) -> None:
    server.routes["/files/bbq/two.jsonl"] = Route(body, mode)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as caught:
        fetch_source("bbq", cache_dir=cache, base_url=server.url)
    text = str(caught.value)
    assert message in text and "bbq/two.jsonl" in text and "\n" not in text
    assert _files_below(cache) == []


def test_an_endless_body_is_stopped_at_the_limit(server: Server, tmp_path: Path) -> None:
    server.routes["/files/bbq/two.jsonl"] = Route(TWO, "endless")
    with pytest.raises(DataError, match="stopped"):
        fetch_source("bbq", cache_dir=tmp_path / "cache", base_url=server.url)
    assert server.endless_done.wait(30)
    # The client hung up after len(TWO) + 1 bytes: the server, blocked on a full socket,
    # failed long before its own cap (socket buffers are far below 64 MiB).
    assert server.endless_sent[0] < ENDLESS_CAP


def test_a_missing_file_on_the_server_is_one_line(server: Server, tmp_path: Path) -> None:
    del server.routes["/files/truthfulqa/two.csv"]
    with pytest.raises(DataError, match="HTTP 404") as caught:
        fetch_source("truthfulqa", cache_dir=tmp_path / "cache", base_url=server.url)
    assert "\n" not in str(caught.value)
    # The first file was complete and verified: it stays; the failed one left nothing.
    assert _files_below(tmp_path / "cache") == [tmp_path / "cache" / "truthfulqa" / "one.csv"]


def test_a_server_that_is_down_is_one_line(server: Server, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DataError, match="a reachable server") as caught:
        fetch_source("bbq", cache_dir=tmp_path / "cache", base_url=f"http://127.0.0.1:{port}")
    assert "\n" not in str(caught.value) and "SEA_DIST_DATA_SOURCE_URL" in str(caught.value)
    assert _files_below(tmp_path / "cache") == []


def test_an_unwritable_cache_is_one_line(server: Server, tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file, not a folder")
    with pytest.raises(DataError, match="data cache") as caught:
        fetch_source("bbq", cache_dir=tmp_path / "cache", base_url=server.url)
    assert "\n" not in str(caught.value)


def test_unknown_source_names_the_known_ones() -> None:
    with pytest.raises(DataError, match="one of bbq, truthfulqa"):
        fetch_source("halueval")


def test_source_url_and_cache_as_arguments(server: Server, tmp_path: Path) -> None:
    assert data_cache_dir() == tmp_path / "home" / ".cache" / "sea-dist" / "data"
    assert data_cache_dir(tmp_path / "flag") == tmp_path / "flag"  # --cache-dir wins
    (entry,) = fetch_source("bbq", cache_dir=tmp_path / "given", base_url=server.url + "/")
    assert entry.path == tmp_path / "given" / "bbq" / "two.jsonl"
    assert entry.path.read_bytes() == TWO


def test_source_url_and_cache_from_the_environment(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI reads $SEA_DIST_CACHE, $SEA_DIST_DATA_CACHE and $SEA_DIST_DATA_SOURCE_URL."""
    assert apply_environment(SeaConfig()).data.cache_dir is None
    monkeypatch.setenv("SEA_DIST_CACHE", str(tmp_path / "models"))
    data = apply_environment(SeaConfig()).data
    assert data_cache_dir(data.cache_dir) == tmp_path / "models" / "data"
    monkeypatch.setenv("SEA_DIST_DATA_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("SEA_DIST_DATA_SOURCE_URL", server.url + "/")
    assert main(["data", "fetch", "bbq"]) == 0
    cached = tmp_path / "env-cache" / "bbq" / "two.jsonl"
    assert cached.read_bytes() == TWO
    assert main(["data", "where"]) == 2  # truthfulqa is missing; bbq is found in that cache


def test_cli_fetch_exits_0_and_then_where_finds_it(
    server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SEA_DIST_DATA_SOURCE_URL", server.url)
    assert main(["data", "fetch", "all"]) == 0
    out = capsys.readouterr().out
    assert "truthfulqa/one.csv" in out and "sha256 verified" in out and "note" not in out
    assert main(["data", "where"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("(data cache)" in line for line in lines)


def test_cli_fetch_into_another_cache_says_how_to_use_it(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["data", "fetch", "bbq", "--cache-dir", str(tmp_path / "c"), "--source-url", server.url]
    assert main(args) == 0
    assert f"set $SEA_DIST_DATA_CACHE={tmp_path / 'c'}" in capsys.readouterr().out


def test_cli_fetch_bad_checksum_exits_2_with_one_line(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.routes["/files/bbq/two.jsonl"] = Route(TWO[::-1])
    args = ["data", "fetch", "bbq", "--cache-dir", str(tmp_path / "c"), "--source-url", server.url]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sea-dist: error: download of bbq/two.jsonl")
    assert _files_below(tmp_path / "c") == []


def test_cli_where_prints_the_fix_and_exits_2(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "where"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("truthfulqa/one.csv: expected it in evaluate.data_dir")
    assert lines[0].endswith("fix: sea-dist data fetch truthfulqa")
    assert lines[2].endswith("fix: sea-dist data fetch bbq")


def test_cli_fetch_unknown_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["data", "fetch", "halueval"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse errors exit from inside the parser
        return int(exit_.code or 0)


@pytest.fixture
def auto_fetch(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The test server; the tests switch the automatic fetch on (conftest turns it off)."""
    monkeypatch.setattr(locate, "_attempted", set())
    return server


def _fetching(server: Server, fetch: bool = True) -> DataConfig:
    return DataConfig(fetch=fetch, source_url=server.url)


def test_a_missing_file_is_fetched_into_the_cache_once(auto_fetch: Server) -> None:
    data = _fetching(auto_fetch)
    found = locate.find_or_fetch_benchmark_file("truthfulqa/two.csv", data=data)
    assert found == data_cache_dir() / "truthfulqa" / "two.csv"
    assert found.read_bytes() == ONE[::-1]
    assert sorted(auto_fetch.requests) == ["/files/truthfulqa/one.csv", "/files/truthfulqa/two.csv"]
    assert locate.find_or_fetch_benchmark_file("truthfulqa/one.csv", data=data) is not None
    assert len(auto_fetch.requests) == 2  # found in the cache now: no second download


def test_the_environment_switches_the_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """$SEA_DIST_DATA_FETCH reaches data.fetch through the entry layer; the config wins."""
    for value, expected in (("never", False), ("off", False), ("0", False), ("auto", True)):
        monkeypatch.setenv(locate.FETCH_ENV, value)
        assert apply_environment(SeaConfig()).data.fetch is expected
    explicit = SeaConfig(data=DataConfig(fetch=True))
    monkeypatch.setenv(locate.FETCH_ENV, "never")
    assert apply_environment(explicit).data.fetch is True
    monkeypatch.delenv(locate.FETCH_ENV)
    assert apply_environment(SeaConfig()).data.fetch is None


def test_a_failed_fetch_is_tried_once_and_leaves_nothing(
    auto_fetch: Server, caplog: pytest.LogCaptureFixture
) -> None:
    auto_fetch.routes["/files/bbq/two.jsonl"] = Route(TWO[:-1] + b"!")
    data = _fetching(auto_fetch)
    assert locate.find_or_fetch_benchmark_file("bbq/two.jsonl", data=data) is None
    assert locate.find_or_fetch_benchmark_file("bbq/two.jsonl", data=data) is None
    assert auto_fetch.requests == ["/files/bbq/two.jsonl"]  # one try per source and process
    assert _files_below(data_cache_dir()) == []
    failures = [r.getMessage() for r in caplog.records if "automatic fetch" in r.getMessage()]
    assert len(failures) == 1 and "sha256" in failures[0] and "\n" not in failures[0]


def test_never_only_looks(auto_fetch: Server) -> None:
    data = _fetching(auto_fetch, fetch=False)
    assert locate.find_or_fetch_benchmark_file("bbq/two.jsonl", data=data) is None
    assert auto_fetch.requests == []


def test_a_file_no_source_provides_is_not_fetched(auto_fetch: Server) -> None:
    data = _fetching(auto_fetch)
    assert locate.find_or_fetch_benchmark_file("truthfulqa/TruthfulQA-7.csv", data=data) is None
    assert auto_fetch.requests == []


def test_an_unreachable_source_gives_the_hint_not_an_error(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: what offline looks like
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(locate, "_attempted", set())
    with pytest.raises(DataError, match="fix: sea-dist data fetch truthfulqa"):
        locate.default_path("truthfulqa", DataConfig(fetch=True, source_url=dead))
