"""Completion markers and manifest digests: what makes a version visible and what anchors it.

Covers the exclusive, all-or-nothing marker write, readers that ignore empty or damaged markers,
the manifest sha256 recorded in the marker (and in ``manifest.sha256`` of a downloaded copy),
files missing from a published version, and unknown names in the alias queries.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sea_dist.errors import ArtifactError
from sea_dist.format.anchors import manifest_digest, parse_marker
from sea_dist.format.artifact import MissingArtifactFileError
from sea_dist.registry.access import load_artifact
from sea_dist.registry.filesystem import Registry
from sea_dist.registry.refs import NotFoundError
from sea_dist.registry.storage import Storage

FitFactory = Callable[..., Path]


def _name_root(registry: Registry, name: str) -> Path:
    return Path(registry.storage.root) / name


def _edit_manifest(folder: Path, **fields: Any) -> None:
    data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    data.update(fields)
    (folder / "manifest.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# -- exclusive create: whole content or nothing ----------------------------------------------------


def test_create_exclusive_is_exclusive_and_leaves_no_temp_file(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "s"))
    results: list[bool] = []

    def create(i: int) -> None:
        results.append(storage.create_exclusive(f"writer {i}".encode(), "n", "claims", "1.json"))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]
    assert os.listdir(tmp_path / "s" / "n" / "claims") == ["1.json"]
    assert (tmp_path / "s" / "n" / "claims" / "1.json").read_bytes().startswith(b"writer ")


def test_create_exclusive_leaves_nothing_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Storage(str(tmp_path / "s"))
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:  # a real disk cannot be made to fill here (no tmpfs mount)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        storage.create_exclusive(b'{"version": 1}', "n", "complete", "1.json")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert os.listdir(tmp_path / "s" / "n" / "complete") == []  # no empty marker, no temp file
    assert storage.create_exclusive(b'{"version": 1}', "n", "complete", "1.json")


@pytest.mark.parametrize("content", [b"", b"{", b"null", b'{"version": 3, "sha256": "ab"}'])
def test_an_empty_or_damaged_marker_does_not_make_a_version_visible(
    registry: Registry, make_fit: FitFactory, content: bytes
) -> None:
    registry.publish(make_fit(seed=1), "m")
    published = registry.publish(make_fit(seed=2), "m")
    (_name_root(registry, "m") / "complete" / "2.json").write_bytes(content)
    assert registry.complete_versions("m") == [1]
    assert [row["version"] for row in registry.versions("m")] == [1]
    assert registry.resolve("m@latest").version == 1
    assert registry.load("m@latest").manifest.version == 1
    with pytest.raises(NotFoundError, match="unfinished publish"):
        registry.resolve(published.ref)
    assert registry.publish(make_fit(seed=3), "m").version == 3


def test_a_name_whose_only_marker_is_empty_is_not_listed(
    registry: Registry, make_fit: FitFactory
) -> None:
    registry.publish(make_fit(seed=1), "only")
    (_name_root(registry, "only") / "complete" / "1.json").write_bytes(b"")
    assert registry.names() == []
    with pytest.raises(NotFoundError, match="published name"):
        registry.resolve("only@latest")


def test_a_long_lived_registry_follows_new_removed_and_replaced_markers(
    registry: Registry, make_fit: FitFactory
) -> None:
    for seed in range(3):
        registry.publish(make_fit(seed=seed), "live")
    assert registry.complete_versions("live") == [1, 2, 3]  # markers validated and remembered
    complete = _name_root(registry, "live") / "complete"
    (complete / "tmp").write_bytes(b"")
    os.replace(complete / "tmp", complete / "2.json")  # replaced by another (empty) file
    assert registry.complete_versions("live") == [1, 3]
    assert [entry.target for entry in registry.gc(keep=1)] == ["live@1"]
    assert registry.complete_versions("live") == [3]
    registry.publish(make_fit(seed=7), "live")
    assert registry.complete_versions("live") == [3, 4]
    assert Registry(registry.url).complete_versions("live") == [3, 4]  # same as a fresh reader


def test_the_marker_records_both_digests(registry: Registry, make_fit: FitFactory) -> None:
    published = registry.publish(make_fit(), "d")
    root = _name_root(registry, "d")
    marker = parse_marker((root / "complete" / "1.json").read_bytes(), 1)
    assert marker is not None and marker.sha256 == published.sha256
    assert marker.manifest_sha256 == manifest_digest(
        (root / "versions" / "1" / "manifest.json").read_bytes()
    )


# -- the manifest digest ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"site": "mlp"},
        {"combine": "average"},
        {"model_id": "another-model"},
        {"feature_map": {"name": "tanh", "scale": 2.0}},
    ],
    ids=["site", "combine", "model_id", "feature_map"],
)
def test_an_edited_manifest_field_is_refused_everywhere(
    registry: Registry, make_fit: FitFactory, tmp_path: Path, fields: dict[str, Any]
) -> None:
    registry.publish(make_fit(seed=1), "e")
    registry.publish(make_fit(seed=2), "e")
    folder = _name_root(registry, "e") / "versions" / "2"
    _edit_manifest(folder, **fields)
    loaders: list[Callable[[], object]] = [
        lambda: registry.load("e@2"),
        lambda: registry.download("e@2", tmp_path / "dl"),
        lambda: registry.manifest("e@2"),
        lambda: load_artifact("e@2", registry=registry.url),
        lambda: load_artifact(folder),  # a version folder: its marker anchors it
    ]
    for load in loaders:
        with pytest.raises(ArtifactError, match="manifest was modified"):
            load()
    assert not (tmp_path / "dl").exists()
    assert registry.load("e@1").manifest.version == 1  # the neighbour is unharmed


def test_a_downloaded_copy_checks_its_manifest_digest(
    registry: Registry, make_fit: FitFactory, tmp_path: Path
) -> None:
    registry.publish(make_fit(), "c")
    copy = registry.download("c@1", tmp_path / "copy")
    assert load_artifact(copy).manifest.site == "residual"
    _edit_manifest(copy, site="mlp")
    with pytest.raises(ArtifactError, match="manifest.sha256"):
        load_artifact(copy)
    (copy / "manifest.sha256").write_text("not a digest\n")
    with pytest.raises(ArtifactError, match="manifest.sha256: expected one line"):
        load_artifact(copy)


def test_markers_without_a_manifest_digest_still_load(
    registry: Registry, make_fit: FitFactory
) -> None:
    # Versions published before the digest existed: their manifest is checked by the tensors only.
    published = registry.publish(make_fit(), "old")
    marker = {"version": 1, "sha256": published.sha256, "completed_at": "2026-01-01T00:00:00Z"}
    (_name_root(registry, "old") / "complete" / "1.json").write_text(json.dumps(marker))
    assert registry.load("old@1").manifest.sha256 == published.sha256


# -- files missing from a published version --------------------------------------------------------


@pytest.mark.parametrize("file_name", ["projections.safetensors", "manifest.json"])
def test_a_missing_file_is_an_artifact_error_naming_it(
    registry: Registry, make_fit: FitFactory, tmp_path: Path, file_name: str
) -> None:
    registry.publish(make_fit(), "gone")
    (_name_root(registry, "gone") / "versions" / "1" / file_name).unlink()
    for load in (
        lambda: registry.load("gone@1"),
        lambda: registry.download("gone@1", tmp_path / "dl"),
        lambda: load_artifact("gone@latest", registry=registry.url),
    ):
        with pytest.raises(MissingArtifactFileError, match=f"{file_name}.*publish the fit output"):
            load()
    assert not (tmp_path / "dl").exists()


# -- alias queries on unknown names ----------------------------------------------------------------


def test_alias_queries_require_a_published_name(registry: Registry, make_fit: FitFactory) -> None:
    registry.publish(make_fit(), "known")
    registry.set_alias("known", "prod", 1)
    assert registry.aliases("known") == {"prod": 1}
    with pytest.raises(NotFoundError, match="published name"):
        registry.aliases("ghost")
    with pytest.raises(NotFoundError, match="published name"):
        registry.alias_history("ghost", "prod")
    assert registry.gc(keep=1, name="ghost") == []  # nothing to remove, not an error


def test_a_consistent_forgery_in_a_version_folder_is_caught_by_its_marker(
    registry: Registry, make_fit: FitFactory
) -> None:
    from sea_dist.format.tensors import decode, encode, sha256_hex

    registry.publish(make_fit(), "f")
    folder = _name_root(registry, "f") / "versions" / "1"
    arrays = decode((folder / "projections.safetensors").read_bytes(), "test")
    forged = encode({name: value * 0 for name, value in arrays.items()})
    (folder / "projections.safetensors").write_bytes(forged)
    files = {"projections.safetensors": {"sha256": sha256_hex(forged), "size_bytes": len(forged)}}
    _edit_manifest(folder, sha256=sha256_hex(forged), size_bytes=len(forged), files=files)
    for load in (lambda: load_artifact(folder), lambda: registry.load("f@1")):
        with pytest.raises(ArtifactError, match="manifest was modified"):
            load()
