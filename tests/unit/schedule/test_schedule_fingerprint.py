"""Input fingerprint: what changes it, what does not, and agreement with what load_model reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from sea_dist.config import DataConfig, ModelConfig, SeaConfig, load_config, with_overrides
from sea_dist.data import demonstrations_fingerprint, load_demonstrations, make_template
from sea_dist.errors import ModelError
from sea_dist.schedule.fingerprint import (
    DEMO_REVISION,
    compute_demonstrations_fingerprint,
    compute_input_fingerprint,
    fingerprint_inputs,
    input_fingerprint,
    resolve_model_revision,
)

REPO = Path(__file__).resolve().parents[3]
BASE = SeaConfig()


def fp(config: SeaConfig = BASE, revision: str = "rev-a", demos: str = "demos-a") -> str:
    return input_fingerprint(config, revision, demos)


def test_pure_deterministic_hex() -> None:
    first = fp()
    assert first == fp() and len(first) == 64 and int(first, 16) >= 0
    assert fp(revision="rev-b") != first
    assert fp(demos="demos-b") != first


@pytest.mark.parametrize(
    "section, values",
    [
        ("model", {"id": "other-model"}),
        ("model", {"dtype": "bfloat16"}),
        ("collect", {"site": "mlp"}),
        ("collect", {"layers": [1, 2]}),
        ("collect", {"neutral": "prompt"}),
        ("collect", {"max_new_tokens": 32}),
        ("store", {"dtype": "float16"}),
        ("fit", {"positive_energy": 0.95}),
        ("fit", {"centre": False}),
        ("fit", {"feature_map": "tanh"}),
        ("fit", {"combine": "average"}),
        ("fit", {"seed": 3}),
    ],
)
def test_result_changing_fields_change_it(section: str, values: dict[str, object]) -> None:
    assert fp(with_overrides(BASE, **{section: values})) != fp()


@pytest.mark.parametrize(
    "section, values",
    [
        ("model", {"device": "cuda"}),
        ("model", {"cache_dir": "/elsewhere"}),
        ("collect", {"batch_size": 2, "rows_per_shard": 7, "num_actors": 4}),
        ("collect", {"ray_address": "auto", "max_retries": 9, "max_in_flight": 5}),
        ("store", {"url": "s3://bucket/store.zarr", "codec": "gzip", "overwrite": True}),
        ("fit", {"out": "elsewhere", "scheduler": "synchronous", "chunk_rows": 17}),
        ("publish", {"name": "another-name", "registry": "s3://b/registry"}),
        ("evaluate", {"limit": 3}),
        ("data", {"limit": 3}),  # changes the demonstrations fingerprint, counted through it
    ],
)
def test_placement_and_speed_fields_do_not(section: str, values: dict[str, object]) -> None:
    assert fp(with_overrides(BASE, **{section: values})) == fp()


def test_document_is_inspectable() -> None:
    document = fingerprint_inputs(BASE, "rev-a", "demos-a")
    assert document["model_revision"] == "rev-a"
    assert "url" not in document["store"] and "positive_energy" in document["fit"]
    assert "revision" not in document["model"]  # the resolved one is used instead


def test_compute_default_config_offline() -> None:
    config = load_config(REPO / "jobs/configs/default.yaml")
    template = make_template(config.data)
    demos = demonstrations_fingerprint(load_demonstrations(config.data), template)
    assert compute_demonstrations_fingerprint(config) == demos
    assert compute_input_fingerprint(config) == input_fingerprint(config, DEMO_REVISION, demos)
    fewer = with_overrides(config, data={"limit": 5})
    assert compute_input_fingerprint(fewer) != compute_input_fingerprint(config)


def test_demo_revision_matches_models() -> None:
    from sea_dist.provision import DEMO_PACKAGE

    assert DEMO_REVISION == DEMO_PACKAGE
    assert resolve_model_revision(ModelConfig()) == DEMO_PACKAGE


def test_local_folder_revision_matches_load_model(tiny_model_dir: Path) -> None:
    from sea_dist.models import load_model

    config = ModelConfig(id=str(tiny_model_dir))
    before = resolve_model_revision(config)
    assert before == load_model(config).revision
    (tiny_model_dir / "model.safetensors").write_bytes(b"changed weights")
    after = resolve_model_revision(config)
    assert after != before and after.startswith("sha256:")


def test_chat_template_fingerprint_uses_the_tokenizer(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    config = SeaConfig(model=ModelConfig(id=str(tiny_model_dir)), data=DataConfig(template="chat"))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    expected = demonstrations_fingerprint(
        load_demonstrations(config.data), make_template(config.data, tokenizer)
    )
    assert compute_demonstrations_fingerprint(config) == expected
    qa = SeaConfig(model=config.model)
    assert compute_demonstrations_fingerprint(qa) != expected


def test_gguf_file_revision_is_its_hash(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF not really")
    by_file = resolve_model_revision(ModelConfig(id=str(gguf)))
    by_folder = resolve_model_revision(ModelConfig(id=str(tmp_path), gguf_file="m.gguf"))
    assert by_file == by_folder and by_file.startswith("sha256:") and len(by_file) == 23


def test_hub_revisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert resolve_model_revision(ModelConfig(id="org/model", revision=commit)) == commit
    # Offline (the hub's parsed setting; conftest sets HF_HUB_OFFLINE=1 too): resolved from the
    # local hub cache, or refused.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match="pin model.revision"):
        resolve_model_revision(ModelConfig(id="org/model"))
    refs = tmp_path / "models--org--model" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(commit + "\n")
    assert resolve_model_revision(ModelConfig(id="org/model")) == commit


def test_missing_local_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="existing folder"):
        resolve_model_revision(ModelConfig(id=str(tmp_path / "absent")))
    with pytest.raises(ModelError, match="safetensors"):
        resolve_model_revision(ModelConfig(id=str(tmp_path)))
