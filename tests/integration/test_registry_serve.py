"""The registry API on Ray Serve: a local Ray cluster, two replicas, queried through the client.

The integration test starts a throwaway local Ray cluster (its own temp dir, 2 CPUs), deploys
:func:`sea_dist.cli.serve_app.build` over a registry holding a tiny
artifact, checks that both replicas run, queries it with :class:`HttpRegistry` (and raw HTTP for
the error document), and shuts Serve and Ray down. The config file and the registry argument are
checked without a cluster.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from synthetic_fit import write_synthetic_fit

from sea_dist.errors import RegistryError
from sea_dist.registry.access import load_artifact
from sea_dist.registry.client import HttpRegistry
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.refs import NotFoundError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "infra" / "ray" / "serve-registry.yaml"
APP = "sea-dist-registry"


def test_config_is_a_valid_serve_config_with_several_replicas() -> None:
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text(encoding="utf-8")))
    [app] = config.applications
    assert app.import_path == "sea_dist.cli.serve_app:build"
    assert app.route_prefix == "/"
    assert [d.num_replicas for d in app.deployments] == [2]
    assert config.http_options.host == "127.0.0.1"  # loopback unless the operator says otherwise


def test_registry_comes_from_args_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from sea_dist.cli.serve_app import registry_url

    monkeypatch.setenv("SEA_DIST_REGISTRY", "s3://bucket/registry")
    assert registry_url({}) == "s3://bucket/registry"
    assert registry_url({"registry": "/shared/registry"}) == "/shared/registry"
    monkeypatch.delenv("SEA_DIST_REGISTRY")
    for args in ({}, {"registry": "sea-runs/registry"}, {"registry": "http://127.0.0.1:8765"}):
        with pytest.raises(RegistryError, match="serve-registry registry: expected"):
            registry_url(args)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    base = tmp_path_factory.mktemp("serve")
    registry = Registry(str(base / "registry"))
    for seed in (1, 2):
        registry.publish(write_synthetic_fit(base / f"fit{seed}", seed=seed), "tiny")
    registry.set_alias("tiny", "production", 1)
    return registry


@pytest.fixture(scope="module")
def served(registry: Registry) -> Iterator[str]:
    """The API on Ray Serve over ``registry``; yields its URL, then shuts Serve and Ray down."""
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    from ray_head import free_port

    from sea_dist.cli.serve_app import build

    temp_dir = tempfile.mkdtemp(prefix="sea-serve-", dir="/tmp")
    port = free_port()
    ray.init(
        address="local",  # a fresh cluster even when another one runs on this machine
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=temp_dir,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build({"registry": registry.url}), name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


def _get(url: str, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    port = int(url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=b"{}" if method == "POST" else None)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.integration
def test_two_replicas_serve_the_registry(served: str, registry: Registry, tmp_path: Path) -> None:
    from ray import serve

    deployment = serve.status().applications[APP].deployments["sea-dist-registry"]
    assert deployment.replica_states.get("RUNNING") == 2, deployment

    with HttpRegistry(served, timeout=60) as client:
        assert client.names() == ["tiny"]
        assert client.versions("tiny") == registry.versions("tiny")
        assert client.resolve("tiny@production") == registry.resolve("tiny@1")
        assert client.aliases("tiny") == {"production": 1}
        assert client.manifest("tiny@2") == registry.manifest("tiny@2")
        with pytest.raises(NotFoundError):
            client.resolve("tiny@9")
        # Queries are spread over the replicas; every answer is the same registry's.
        assert {client.resolve("tiny").ref for _ in range(8)} == {"tiny@2"}
        folder = client.download("tiny@production", tmp_path / "copy")
    assert load_artifact(folder).manifest.sha256 == registry.resolve("tiny@1").sha256
    assert load_artifact("tiny@latest", registry=served).manifest.version == 2


@pytest.mark.integration
def test_limits_and_error_document_hold_behind_the_proxy(served: str) -> None:
    for path, method, status in (
        ("/v1/names", "POST", 405),
        ("/v1/resolve/..%2Fetc", "GET", 400),
        ("/v1/" + "a" * 3000, "GET", 414),
        ("/etc/passwd", "GET", 404),
    ):
        got, headers, body = _get(served, path, method)
        assert (got, headers["content-type"]) == (status, "application/json"), body[:200]
        assert json.loads(body)["error"]["status"] == status
    status, headers, body = _get(
        served, "/v1/artifacts/tiny/1/files/projections.safetensors", "HEAD"
    )
    assert status == 200 and body == b"" and len(headers["x-content-sha256"]) == 64
    status, _, body = _get(served, "/openapi.json")
    assert status == 200 and "/v1/resolve/{ref}" in json.loads(body)["paths"]
