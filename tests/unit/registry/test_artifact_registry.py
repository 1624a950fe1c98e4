"""Local registry: versions, immutability, invisible partial versions, aliases, queries, index."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sea_dist.errors import ArtifactError, ConfigError, RegistryError
from sea_dist.format.compat import ModelFacts, check_model_compatible
from sea_dist.format.tensors import decode, sha256_hex
from sea_dist.registry.access import load_artifact
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.index import INDEX_FILE
from sea_dist.registry.refs import NotFoundError

FitFactory = Callable[..., Path]


def _root(registry: Registry) -> Path:
    return Path(registry.storage.root)


def test_publish_numbers_versions_and_loads(registry: Registry, make_fit: FitFactory) -> None:
    fits = [make_fit(seed=i) for i in range(3)]
    published = [registry.publish(f, "sea-demo") for f in fits]
    assert [p.version for p in published] == [1, 2, 3]
    assert registry.names() == ["sea-demo"]
    assert registry.complete_versions("sea-demo") == [1, 2, 3]
    for fit, p in zip(fits, published):
        data = (fit / "projections.safetensors").read_bytes()
        assert p.sha256 == sha256_hex(data)
        artifact = registry.load(p.ref)
        assert artifact.manifest.version == p.version and artifact.manifest.name == "sea-demo"
        expected = decode(data, "fit")
        for layer, proj in artifact.layers.items():
            np.testing.assert_array_equal(proj.U_pos, expected[f"layers.{layer}.U_pos"])
            np.testing.assert_array_equal(proj.U_neg, expected[f"layers.{layer}.U_neg"])
            np.testing.assert_array_equal(proj.mean, expected[f"layers.{layer}.mean"])
    root = _root(registry) / "sea-demo"
    assert not list((root / "staging").iterdir())  # staging cleaned up
    manifest = json.loads((root / "versions" / "2" / "manifest.json").read_text())
    assert manifest["version"] == 2 and manifest["sha256"] == published[1].sha256


def test_torch_tensors_and_model_check(registry: Registry, make_fit: FitFactory) -> None:
    import torch

    registry.publish(make_fit(d_model=16, n_model_layers=4), "m")
    artifact = load_artifact("m@1", registry=registry.url, framework="torch")
    assert isinstance(artifact.layers[1].U_pos, torch.Tensor)
    assert artifact.layers[1].U_pos.dtype == torch.float32
    # The model check is sea_dist.format.compat's (one check for manifests and edits).
    manifest, what = artifact.manifest, artifact.ref
    fits = ModelFacts(d_model=16, n_layers=4, model_id="tiny-random-llama")
    check_model_compatible(manifest, manifest.layers, fits, what)
    with pytest.raises(ArtifactError, match="d_model"):
        check_model_compatible(manifest, manifest.layers, ModelFacts(32, 4), what)
    with pytest.raises(ArtifactError, match="n_model_layers"):
        check_model_compatible(manifest, manifest.layers, ModelFacts(16, 5), what)
    with pytest.raises(ArtifactError, match="model_id"):
        check_model_compatible(manifest, manifest.layers, ModelFacts(16, 4, model_id="other"), what)


def test_invalid_names_are_refused(registry: Registry, make_fit: FitFactory) -> None:
    fit = make_fit()
    for bad in ("Sea", "../escape", "a/b", "", "x" * 101):
        with pytest.raises(RegistryError, match="name"):
            registry.publish(fit, bad)
    with pytest.raises(RegistryError, match="alias"):
        registry.publish(fit, "ok", aliases=["latest"])
    assert registry.names() == []  # nothing half-published by the refused calls
    assert not _root(registry).exists() or not (_root(registry) / "ok").exists()


def test_partial_versions_are_invisible(registry: Registry, make_fit: FitFactory) -> None:
    registry.publish(make_fit(seed=1), "p")
    root = _root(registry) / "p"
    # A publisher that died after claiming 2 and copying files, before its marker:
    (root / "claims" / "2.json").write_text('{"version": 2, "token": "dead"}')
    (root / "versions" / "2").mkdir(parents=True)
    (root / "versions" / "2" / "projections.safetensors").write_bytes(b"partial")
    (root / "staging" / "deadbeef").mkdir(parents=True)
    assert registry.complete_versions("p") == [1]
    assert [r["version"] for r in registry.versions("p")] == [1]
    assert registry.resolve("p@latest").version == 1
    with pytest.raises(NotFoundError):
        registry.resolve("p@2")
    # The next publisher skips the claimed number: version numbers are never reused.
    assert registry.publish(make_fit(seed=2), "p").version == 3


def test_versions_are_immutable_and_never_reused_after_gc(
    registry: Registry, make_fit: FitFactory
) -> None:
    for seed in range(4):
        registry.publish(make_fit(seed=seed), "g")
    before = (_root(registry) / "g" / "versions" / "4" / "projections.safetensors").read_bytes()
    removed = registry.gc(keep=1)
    assert [e.target for e in removed if e.kind == "version"] == ["g@1", "g@2", "g@3"]
    assert registry.complete_versions("g") == [4]
    assert registry.publish(make_fit(seed=9), "g").version == 5
    after = (_root(registry) / "g" / "versions" / "4" / "projections.safetensors").read_bytes()
    assert before == after


def test_aliases_move_atomically_with_history(registry: Registry, make_fit: FitFactory) -> None:
    for seed in range(3):
        registry.publish(make_fit(seed=seed), "a", aliases=["nightly"])
    assert registry.aliases("a") == {"nightly": 3}
    registry.set_alias("a", "production", 1)
    registry.set_alias("a", "production", "v2")
    assert registry.resolve("a@production").version == 2
    assert registry.resolve("a@latest").version == 3
    history = registry.alias_history("a", "production")
    assert [(h["version"], h["previous"]) for h in history] == [(1, None), (2, 1)]
    assert [h["version"] for h in registry.alias_history("a", "nightly")] == [1, 2, 3]
    with pytest.raises(NotFoundError, match="existing version"):
        registry.set_alias("a", "production", 9)
    for bad in ("latest", "7", "Prod"):
        with pytest.raises(RegistryError):
            registry.set_alias("a", bad, 1)
    with pytest.raises(NotFoundError, match="alias"):
        registry.resolve("a@missing")
    rows = {r["version"]: r["aliases"] for r in registry.versions("a")}
    assert rows == {1: [], 2: ["production"], 3: ["latest", "nightly"]}
    # No temp files are left next to the pointers.
    current = _root(registry) / "a" / "aliases" / "current"
    assert sorted(os.listdir(current)) == ["nightly.json", "production.json"]


def test_concurrent_alias_moves_keep_every_history_entry(
    registry: Registry, make_fit: FitFactory
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for seed in range(4):
        registry.publish(make_fit(seed=seed), "c")
    targets = [1, 2, 3, 4] * 4
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda v: registry.set_alias("c", "production", v), targets))
    history = registry.alias_history("c", "production")
    assert sorted(h["version"] for h in history) == sorted(targets)
    assert registry.resolve("c@production").version in targets
    current = _root(registry) / "c" / "aliases" / "current"
    assert os.listdir(current) == ["production.json"]


def test_version_filters(registry: Registry, make_fit: FitFactory) -> None:
    registry.publish(
        make_fit(model_id="m1", demonstrations="d1"), "f", created_at="2026-01-01T00:00:00+00:00"
    )
    registry.publish(
        make_fit(model_id="m2", demonstrations="d1"), "f", created_at="2026-02-01T00:00:00+00:00"
    )
    registry.publish(
        make_fit(model_id="m1", demonstrations="d2"), "f", created_at="2026-03-01T00:00:00+00:00"
    )
    d1 = registry.versions("f")[0]["demonstrations_fingerprint"]

    def versions(**filters: str) -> list[int]:
        return [r["version"] for r in registry.versions("f", **filters)]

    assert versions() == [1, 2, 3]
    assert versions(model_id="m1") == [1, 3]
    assert versions(dataset=d1) == [1, 2]
    assert versions(dataset=d1[:8], model_id="m1") == [1]
    assert versions(after="2026-02-01") == [2, 3]
    assert versions(before="2026-02-01T00:00:00Z") == [1]
    assert versions(after="2026-01-15", before="2026-02-15") == [2]
    assert versions(model_id="nope") == []
    with pytest.raises(RegistryError, match="ISO-8601"):
        registry.versions("f", after="yesterday")
    with pytest.raises(NotFoundError, match="published name"):
        registry.versions("unknown")


def test_sha256_references(registry: Registry, make_fit: FitFactory) -> None:
    same = make_fit(seed=5)
    first = registry.publish(same, "s")
    registry.publish(make_fit(seed=6), "s")
    again = registry.publish(same, "s")  # identical content, a new version
    assert again.sha256 == first.sha256
    assert registry.resolve(f"sha256:{first.sha256[:10]}").version == 3
    assert registry.resolve(f"sha256:{first.sha256}") == again
    registry.publish(same, "other")
    with pytest.raises(RegistryError, match="matching one"):
        registry.resolve(f"sha256:{first.sha256[:10]}")
    with pytest.raises(NotFoundError):
        registry.resolve("sha256:" + "f" * 64 if not first.sha256.startswith("f") else "0" * 64)


def test_index_is_rebuilt_when_missing_stale_or_corrupt(
    registry: Registry, make_fit: FitFactory
) -> None:
    registry.publish(make_fit(seed=1), "i")
    index = _root(registry) / "i" / INDEX_FILE
    assert [r["version"] for r in registry.versions("i")] == [1]
    assert index.exists()
    registry.publish(make_fit(seed=2), "i")  # index now stale (lacks 2)
    assert [r["version"] for r in registry.versions("i")] == [1, 2]
    import pyarrow.parquet as pq

    assert pq.read_table(index).column("version").to_pylist() == [1, 2]
    index.write_bytes(b"garbage")
    assert [r["version"] for r in registry.versions("i")] == [1, 2]
    index.unlink()
    assert registry.reindex() == {"i": 2}
    registry.gc(keep=1)
    assert [r["version"] for r in registry.versions("i")] == [2]
    assert pq.read_table(index).column("version").to_pylist() == [2]


def test_gc_protects_aliases_and_dry_run_removes_nothing(
    registry: Registry, make_fit: FitFactory
) -> None:
    for seed in range(5):
        registry.publish(make_fit(seed=seed), "r")
    registry.set_alias("r", "production", 2)
    dry = registry.gc(keep=2, dry_run=True)
    assert [e.target for e in dry] == ["r@1", "r@3"]
    assert registry.complete_versions("r") == [1, 2, 3, 4, 5]
    done = registry.gc(keep=2)
    assert [e.target for e in done] == ["r@1", "r@3"]
    assert registry.complete_versions("r") == [2, 4, 5]
    assert registry.load("r@production").manifest.version == 2
    assert not (_root(registry) / "r" / "versions" / "1").exists()
    with pytest.raises(RegistryError, match="keep"):
        registry.gc(keep=0)


def test_gc_removes_only_stale_staging(registry: Registry, make_fit: FitFactory) -> None:
    registry.publish(make_fit(), "st")
    staging = _root(registry) / "st" / "staging"
    old, fresh = staging / "old0", staging / "fresh0"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "projections.safetensors").write_bytes(b"x")
    two_days_ago = (old / "projections.safetensors").stat().st_mtime - 2 * 86400
    os.utime(old / "projections.safetensors", (two_days_ago, two_days_ago))
    assert [(e.kind, e.target) for e in registry.gc(keep=5)] == [("staging", "old0")]
    assert fresh.exists() and not old.exists()


def test_load_artifact_path_or_ref(
    registry: Registry, make_fit: FitFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.publish(make_fit(), "lp")
    with pytest.raises(ArtifactError, match="manifest.json"):
        load_artifact(tmp_path / "no-such-folder")
    # A bare reference resolves in the default registry, relative to the working directory.
    monkeypatch.chdir(tmp_path)
    default = Registry()  # sea-runs/registry
    default.publish(make_fit(seed=3), "lp")
    assert load_artifact("lp").manifest.sha256 == default.resolve("lp").sha256
    with pytest.raises(RegistryError, match="reference"):
        load_artifact("Not A Ref")


def test_download_verifies_and_copies(
    registry: Registry, make_fit: FitFactory, tmp_path: Path
) -> None:
    p = registry.publish(make_fit(), "d")
    dest = registry.download("d@latest", tmp_path / "copy")
    assert sorted(os.listdir(dest)) == [
        "manifest.json",
        "manifest.sha256",
        "projections.safetensors",
    ]
    assert sha256_hex((dest / "projections.safetensors").read_bytes()) == p.sha256
    digest = sha256_hex((dest / "manifest.json").read_bytes())
    assert (dest / "manifest.sha256").read_text() == f"{digest}  manifest.json\n"
    assert load_artifact(dest).manifest.sha256 == p.sha256


@pytest.mark.parametrize("damage", ["flip", "truncate", "pickle", "manifest-sha"])
def test_damaged_artifacts_are_refused(
    registry: Registry, make_fit: FitFactory, tmp_path: Path, damage: str
) -> None:
    import pickle

    registry.publish(make_fit(), "t")
    folder = _root(registry) / "t" / "versions" / "1"
    data_path = folder / "projections.safetensors"
    data = data_path.read_bytes()
    if damage == "flip":
        data_path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        message = "sha256"
    elif damage == "truncate":
        data_path.write_bytes(data[: len(data) // 2])
        message = "truncated"
    elif damage == "pickle":
        data_path.write_bytes(pickle.dumps({"layers.1.U_pos": np.zeros((16, 3))}))
        message = "pickle"
    else:  # a forged manifest that matches forged content
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["sha256"] = "0" * 64
        (folder / "manifest.json").write_text(json.dumps(manifest))
        message = "sha256"
    with pytest.raises(ArtifactError, match=message):
        registry.load("t@1")
    with pytest.raises(ArtifactError, match=message):
        load_artifact(folder)
    with pytest.raises(ArtifactError, match=message):
        registry.download("t@1", tmp_path / "dl")
    assert not (tmp_path / "dl").exists()  # nothing written from a refused artifact


def test_publish_config_validation(tmp_path: Path, make_fit: FitFactory) -> None:
    from sea_dist.registry.publish_run import publish_run

    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"publish:\n  registry: {tmp_path / 'reg'}\n  name: from-config\n"
        "  aliases: [staging, prod]\nfit:\n  centre: true\n"
    )
    resolved = publish_run(str(make_fit()), config_path=str(config))
    assert resolved.ref == "from-config@1"
    # prod is gated and the version has no evaluation record: published, prod left unset
    assert [p.alias for p in resolved.refused] == ["prod"]
    registry = Registry(str(tmp_path / "reg"))
    assert registry.aliases("from-config") == {"staging": 1}
    manifest = registry.manifest("from-config@staging")
    assert manifest.config["publish"]["name"] == "from-config"
    assert "model" in manifest.config and "collect" in manifest.config
    with pytest.raises(ConfigError, match="name"):
        publish_run(str(make_fit()), name="Bad Name", registry=str(tmp_path / "reg"))
