"""The read-only HTTP API over real HTTP on loopback: endpoints, client parity, refusals."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from synthetic_fit import write_synthetic_fit

from sea_dist.errors import RegistryError
from sea_dist.format.tensors import sha256_hex
from sea_dist.registry.access import load_artifact
from sea_dist.registry.client import HttpRegistry
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.refs import NotFoundError
from sea_dist.serve.server import BackgroundServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, str]]:
    base = tmp_path_factory.mktemp("http")
    registry = Registry(str(base / "registry"))
    for seed in range(3):
        fit = write_synthetic_fit(base / f"fit{seed}", seed=seed, model_id=f"m{seed % 2}")
        registry.publish(fit, "web", created_at=f"2026-0{seed + 1}-01T00:00:00+00:00")
    registry.publish(write_synthetic_fit(base / "other", seed=9), "other")
    registry.set_alias("web", "production", 2)
    with BackgroundServer(registry) as server:
        yield registry, server.url


def request(
    url: str,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        # skip_host etc. are not needed; putrequest would normalise nothing, so raw paths go out.
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def get_json(url: str, path: str) -> tuple[int, Any]:
    status, headers, body = request(url, path)
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)


def test_query_endpoints(served: tuple[Registry, str]) -> None:
    registry, url = served
    assert get_json(url, "/v1/health") == (200, {"status": "ok", "registry": registry.url})
    assert get_json(url, "/v1/names") == (200, {"names": ["other", "web"]})
    status, data = get_json(url, "/v1/names/web/versions")
    assert status == 200 and [v["version"] for v in data["versions"]] == [1, 2, 3]
    assert data["versions"] == registry.versions("web")
    status, data = get_json(url, "/v1/names/web/versions?model_id=m0&after=2026-01-15")
    assert [v["version"] for v in data["versions"]] == [3]
    fingerprint = data["versions"][0]["demonstrations_fingerprint"]
    status, data = get_json(
        url, f"/v1/names/web/versions?dataset={fingerprint[:6]}&before=2026-02-15"
    )
    assert [v["version"] for v in data["versions"]] == [1, 2]
    assert get_json(url, "/v1/names/web/aliases")[1] == {
        "name": "web",
        "aliases": {"production": 2},
    }
    history = get_json(url, "/v1/names/web/aliases/production/history")[1]["history"]
    assert [h["version"] for h in history] == [2]
    for ref, version in (("web", 3), ("web@latest", 3), ("web@production", 2), ("web@1", 1)):
        status, data = get_json(url, f"/v1/resolve/{ref}")
        assert status == 200 and data["version"] == version and data["ref"] == f"web@{version}"
    sha = registry.resolve("web@1").sha256
    assert get_json(url, f"/v1/resolve/sha256:{sha[:12]}")[1]["ref"] == "web@1"
    status, manifest = get_json(url, "/v1/artifacts/web/production/manifest")
    assert status == 200 and manifest == registry.manifest("web@2").to_dict()
    status, data = get_json(url, "/v1/diff?a=web@1&b=web%40production")
    assert status == 200 and data == json.loads(json.dumps(registry.diff("web@1", "web@2")))


def test_download_has_checksum_headers(served: tuple[Registry, str]) -> None:
    registry, url = served
    resolved = registry.resolve("web@latest")
    status, headers, body = request(url, "/v1/artifacts/web/latest/files/projections.safetensors")
    assert status == 200
    assert headers["x-content-sha256"] == resolved.sha256 == sha256_hex(body)
    assert headers["etag"] == f'"sha256:{resolved.sha256}"'
    assert headers["x-artifact-ref"] == "web@3"
    assert int(headers["content-length"]) == len(body)
    status, headers, body = request(url, "/v1/artifacts/web/3/files/manifest.json")
    assert status == 200 and headers["x-content-sha256"] == sha256_hex(body)
    status, headers, body = request(
        url, "/v1/artifacts/web/3/files/projections.safetensors", method="HEAD"
    )
    assert status == 200 and body == b"" and headers["x-content-sha256"] == resolved.sha256


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/artifacts/../../etc/passwd/manifest", 400),
        ("/v1/artifacts/web/..%2F..%2Fetc/manifest", 400),
        ("/v1/artifacts/%2e%2e/1/manifest", 400),
        ("/v1/artifacts/web/1/files/..%2Fmanifest.json", 400),
        ("/v1/artifacts/web/1/files/fit.json", 404),
        ("/v1/artifacts/web/1/files/index.parquet", 404),
        ("/v1/resolve/..%2F..%2Fetc", 400),
        ("/v1/resolve/WEB", 400),
        ("/v1/resolve/web@", 400),
        ("/v1/resolve/sha256:zz", 400),
        ("/v1/resolve/web@99", 404),
        ("/v1/resolve/web@nope", 404),
        ("/v1/resolve/ghost", 404),
        ("/v1/names/web/versions?after=tomorrow", 400),
        ("/v1/names/Bad/versions", 400),
        ("/v1/diff?a=web@1", 400),
        ("/v1/nothing", 404),
        ("/etc/passwd", 404),
        ("/v1//names", 404),
        ("/v1/names/web/aliases/latest/history", 400),
        ("/v1/" + "a" * 3000, 414),
    ],
)
def test_bad_requests_get_json_errors(served: tuple[Registry, str], path: str, status: int) -> None:
    _, url = served
    got, headers, body = request(url, path)
    assert got == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["status"] == status and error["message"]
    assert "Traceback" not in error["message"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_no_write_methods(served: tuple[Registry, str], method: str) -> None:
    registry, url = served
    status, headers, body = request(url, "/v1/names", method=method, body=b"{}")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert json.loads(body)["error"]["status"] == 405
    assert registry.names() == ["other", "web"]


def test_request_body_is_refused(served: tuple[Registry, str]) -> None:
    _, url = served
    status, _, body = request(url, "/v1/names", body=b"x" * 10)
    assert status == 413 and json.loads(body)["error"]["status"] == 413


def test_python_client_matches_the_registry(served: tuple[Registry, str], tmp_path: Path) -> None:
    registry, url = served
    client = HttpRegistry(url)
    assert client.names() == registry.names()
    assert client.versions("web", model_id="m1") == registry.versions("web", model_id="m1")
    assert client.resolve("web@production") == registry.resolve("web@production")
    assert client.manifest("web@1") == registry.manifest("web@1")
    assert client.aliases("web") == registry.aliases("web")
    assert client.alias_history("web", "production") == registry.alias_history("web", "production")
    folder = client.download("web@production", tmp_path / "dl")
    assert load_artifact(folder).manifest.sha256 == registry.resolve("web@2").sha256
    artifact = load_artifact("web@latest", registry=url)
    assert artifact.manifest.version == 3
    with pytest.raises(NotFoundError):
        client.resolve("web@42")
    with pytest.raises(RegistryError, match="reference"):
        client.resolve("bad@")
    with pytest.raises(RegistryError, match="reachable"):
        HttpRegistry("http://127.0.0.1:9", timeout=2).names()


def test_cli_serve_binds_loopback(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path / "reg"))
    registry.publish(write_synthetic_fit(tmp_path / "fit"), "cli-served")
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "sea_dist.cli",
            "registry",
            "serve",
            "--registry",
            registry.url,
            "--host",
            "0.0.0.0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and "loopback" in refused.stderr
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sea_dist.cli",
            "registry",
            "serve",
            "--registry",
            registry.url,
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line
        url = line.split(" at ")[1].split()[0]
        assert HttpRegistry(url).resolve("cli-served").ref == "cli-served@1"
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "sea_dist.cli",
                "registry",
                "versions",
                "cli-served",
                "--registry",
                url,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["versions"][0]["ref"] == "cli-served@1"
    finally:
        os.kill(process.pid, signal.SIGINT)
        process.wait(timeout=20)


def raw_request(url: str, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send a request as raw bytes (http.client would refuse or normalise some of these)."""
    import socket

    parts = urlsplit(url)
    data = (head + "\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").encode("latin-1")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before reading all of it
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    header_block, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("head", "status"),
    [
        ("GET /v1/" + "a" * 70_000 + " HTTP/1.1", 414),
        ("GET /v1/names HTTP/1.1\r\n" + "\r\n".join(f"X-{i}: y" for i in range(120)), 431),
        ("GET /v1/names HTTP/1.1\r\nX-Big: " + "a" * 70_000, 431),
        ("GET /v1/names HTTP/9.9", 505),
        ("GARBAGE", 400),
    ],
    ids=["request-line-over-64k", "120-headers", "header-over-64k", "bad-version", "bad-syntax"],
)
def test_requests_refused_by_http_server_get_the_json_error(
    served: tuple[Registry, str], head: str, status: int
) -> None:
    _, url = served
    got, headers, body = raw_request(url, head)
    assert got == status and headers["content-type"] == "application/json", body[:200]
    error = json.loads(body)["error"]
    assert error["status"] == status and error["type"] == "RequestError"
    assert error["message"] and "\n" not in error["message"] and len(error["message"]) <= 300


def test_unknown_method_gets_405_json(served: tuple[Registry, str]) -> None:
    _, url = served
    status, headers, body = raw_request(url, "BREW /v1/names HTTP/1.1")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["message"].endswith("found BREW")


def test_aliases_of_an_unknown_name_is_404(served: tuple[Registry, str]) -> None:
    _, url = served
    for path in ("/v1/names/ghost/aliases", "/v1/names/ghost/aliases/production/history"):
        status, data = get_json(url, path)
        assert status == 404 and "published name" in data["error"]["message"]
    with pytest.raises(NotFoundError):
        HttpRegistry(url).aliases("ghost")


def test_damaged_versions_over_http(tmp_path: Path) -> None:
    from sea_dist.errors import ArtifactError
    from sea_dist.format.artifact import MissingArtifactFileError

    registry = Registry(str(tmp_path / "registry"))
    for seed in range(3):
        registry.publish(write_synthetic_fit(tmp_path / f"fit{seed}", seed=seed), "dmg")
    versions = tmp_path / "registry" / "dmg" / "versions"
    (versions / "2" / "projections.safetensors").unlink()
    manifest = json.loads((versions / "3" / "manifest.json").read_text())
    (versions / "3" / "manifest.json").write_text(json.dumps({**manifest, "site": "mlp"}))
    with BackgroundServer(registry) as server:
        client = HttpRegistry(server.url)
        gone = "/v1/artifacts/dmg/2/files/projections.safetensors"
        status, headers, body = request(server.url, gone)
        error = json.loads(body)["error"]
        assert status == 404 and error["type"] == "MissingArtifactFileError"
        assert "projections.safetensors" in error["message"]
        with pytest.raises(MissingArtifactFileError, match="projections.safetensors"):
            client.load("dmg@2")
        for path in ("/v1/artifacts/dmg/3/manifest", "/v1/artifacts/dmg/3/files/manifest.json"):
            status, _, body = request(server.url, path)
            assert status == 500 and "manifest was modified" in json.loads(body)["error"]["message"]
        with pytest.raises(ArtifactError, match="manifest was modified"):
            client.download("dmg@3", tmp_path / "dl3")
        copy = client.download("dmg@1", tmp_path / "dl1")
        assert sorted(os.listdir(copy)) == [
            "manifest.json",
            "manifest.sha256",
            "projections.safetensors",
        ]
        assert load_artifact(copy).manifest.version == 1
    assert not (tmp_path / "dl3").exists()
