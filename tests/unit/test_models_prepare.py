"""``prepare_model``: the driver converts once; the config it returns leads others to the cache."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tiny_models import save_tiny_gguf

from sea_dist.config import DEMO_MODEL_ID, ModelConfig
from sea_dist.models import load_model
from sea_dist.provision import needs_conversion, prepare_model


def _conversions(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage().startswith("converting GGUF") for r in caplog.records)


def test_gguf_is_converted_by_prepare_and_only_read_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gguf = save_tiny_gguf(tmp_path / "src" / "tiny.gguf")
    driver_dir, actor_dir = tmp_path / "driver", tmp_path / "actor"
    driver_dir.mkdir()
    actor_dir.mkdir()
    caplog.set_level(logging.INFO, logger="sea_dist.provision")

    monkeypatch.chdir(driver_dir)  # a relative cache resolves against the driver's directory
    config = ModelConfig(id=str(gguf), cache_dir="cache")
    prepared = prepare_model(config)
    assert _conversions(caplog) == 1
    assert prepared.cache_dir == str(driver_dir / "cache")
    assert (prepared.id, prepared.device, prepared.dtype) == (config.id, config.device, "float32")
    converted = [p for p in (driver_dir / "cache" / "models").iterdir() if p.is_dir()]
    assert [p.name[:5] for p in converted] == ["gguf-"]
    assert (converted[0] / "model.safetensors").is_file()

    # A collector: another working directory, the prepared config: it reads, never converts.
    monkeypatch.chdir(actor_dir)
    loaded = load_model(prepared)
    assert _conversions(caplog) == 1
    assert loaded.model_id == str(gguf) and loaded.revision.startswith("sha256:")
    assert not (actor_dir / "cache").exists()
    assert prepare_model(prepared) == prepared  # idempotent: nothing new to convert


def test_folders_and_hub_ids_need_nothing(tmp_path: Path) -> None:
    for config in (
        ModelConfig(id=str(tmp_path)),
        ModelConfig(id="someorg/some-model", cache_dir="relative"),
    ):
        assert not needs_conversion(config)
        assert prepare_model(config) is config
    assert needs_conversion(ModelConfig(id=DEMO_MODEL_ID))
    assert needs_conversion(ModelConfig(id=str(tmp_path), gguf_file="m.gguf"))
    assert needs_conversion(ModelConfig(id=str(tmp_path / "m.gguf")))


def test_demo_model_prepared_names_its_cache(demo_model_dir: Path) -> None:
    # demo_model_dir is the default cache's converted folder (converted before, or now, once)
    prepared = prepare_model(ModelConfig(id=DEMO_MODEL_ID))
    assert prepared.cache_dir is not None
    assert Path(prepared.cache_dir) / "models" / DEMO_MODEL_ID == demo_model_dir.resolve()
