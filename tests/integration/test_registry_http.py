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

from sea_dist.artifacts.client import HttpRegistry
from sea_dist.artifacts.http import BackgroundServer
from sea_dist.artifacts.loader import load_artifact
from sea_dist.artifacts.refs import NotFoundError
from sea_dist.artifacts.registry import Registry
from sea_dist.artifacts.synthetic import write_synthetic_fit
from sea_dist.artifacts.tensors import sha256_hex
from sea_dist.errors import RegistryError

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
