"""Loading models: local folders, GGUF files, the demo model; devices, dtypes, fingerprints."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import torch
from tiny_models import (
    ARCHITECTURES,
    D_MODEL,
    N_LAYERS,
    build_tiny_model,
    save_tiny_gguf,
    save_tiny_model,
    tiny_tokenizer,
)

from sea_dist.cli.environment import apply_environment
from sea_dist.config import DEMO_MODEL_ID, ModelConfig, SeaConfig
from sea_dist.errors import ConfigError, ModelError
from sea_dist.models import (
    LoadedModel,
    load_model,
    resolve_device,
    tokenizer_fingerprint,
)
from sea_dist.provision import DEMO_PACKAGE, cache_root, convert_gguf, default_cache_dir

TEXTS = ["The capital of France is", "Hi there"]


def _logits(model: torch.nn.Module, tokenizer: object) -> torch.Tensor:
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)  # type: ignore[operator]
    with torch.no_grad():
        return model(**batch).logits.float()


@pytest.mark.parametrize("tiny_model_dir", ARCHITECTURES, indirect=True)
def test_load_local_folder_reproduces_the_saved_model(tiny_model_dir: Path) -> None:
    loaded = load_model(ModelConfig(id=str(tiny_model_dir), cache_dir=str(tiny_model_dir.parent)))
    arch = tiny_model_dir.name.removeprefix("tiny-")
    original, tokenizer = build_tiny_model(arch)
    assert isinstance(loaded, LoadedModel)
    assert loaded.model_id == str(tiny_model_dir)
    assert loaded.architecture == original.config.model_type
    assert (loaded.d_model, loaded.n_layers) == (D_MODEL, N_LAYERS)
    assert loaded.revision.startswith("sha256:") and len(loaded.revision) == 7 + 16
    assert not loaded.model.training
    assert loaded.tokenizer.pad_token == "<pad>"
    assert tokenizer_fingerprint(loaded.tokenizer) == tokenizer_fingerprint(tokenizer)
    torch.testing.assert_close(
        _logits(loaded.model, loaded.tokenizer), _logits(original, tokenizer)
    )


def test_revision_is_a_hash_of_the_weights(tmp_path: Path) -> None:
    def revision(seed: int, name: str) -> str:
        folder = save_tiny_model("gpt2", tmp_path / name, seed=seed)
        return load_model(ModelConfig(id=str(folder))).revision

    first = revision(0, "a")
    assert revision(0, "b") == first
    assert revision(1, "c") != first


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_dtype_selection(tiny_model_dir: Path, dtype: str) -> None:
    loaded = load_model(ModelConfig(id=str(tiny_model_dir), dtype=dtype))  # type: ignore[arg-type]
    assert {p.dtype for p in loaded.model.parameters()} == {getattr(torch, dtype)}
    assert torch.isfinite(_logits(loaded.model, loaded.tokenizer)).all()


def test_pad_token_falls_back_to_eos(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = None
    model.save_pretrained(str(tmp_path))
    tokenizer.save_pretrained(str(tmp_path))
    loaded = load_model(ModelConfig(id=str(tmp_path)))
    assert loaded.tokenizer.pad_token == loaded.tokenizer.eos_token == "</s>"
    assert loaded.tokenizer.padding_side == "right"  # left as loaded


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected_auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected_auto
    with pytest.raises(ConfigError, match="cpu, auto, cuda, cuda:N"):
        resolve_device("tpu")
    with pytest.raises(ConfigError):
        resolve_device("cuda:x")


def test_unavailable_cuda_is_a_clear_error(tiny_model_dir: Path) -> None:
    if torch.cuda.is_available():
        with pytest.raises(ModelError, match="cuda:0"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
        return
    with pytest.raises(ModelError, match="device: expected a visible CUDA GPU.*model.device"):
        resolve_device("cuda")
    with pytest.raises(ModelError, match="'cuda:1'"):
        load_model(ModelConfig(id=str(tiny_model_dir), device="cuda:1"))


def test_tokenizer_fingerprint(tmp_path: Path) -> None:
    base = tokenizer_fingerprint(tiny_tokenizer())
    assert len(base) == 64 and int(base, 16) >= 0
    assert tokenizer_fingerprint(tiny_tokenizer()) == base
    other_side = tiny_tokenizer()
    other_side.padding_side = "left"  # padding side changes no token id
    assert tokenizer_fingerprint(other_side) == base
    saved = tiny_tokenizer()
    saved.save_pretrained(str(tmp_path))
    from transformers import AutoTokenizer

    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(str(tmp_path))) == base
    extended = tiny_tokenizer()
    extended.add_tokens(["<extra>"])
    assert tokenizer_fingerprint(extended) != base
    new_eos = tiny_tokenizer()
    new_eos.eos_token = "<unk>"
    assert tokenizer_fingerprint(new_eos) != base


def test_missing_sources_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="existing folder or .gguf file"):
        load_model(ModelConfig(id=str(tmp_path / "nope")))
    with pytest.raises(ModelError, match="existing folder or .gguf file"):
        load_model(ModelConfig(id="weights.gguf"))
    (tmp_path / "config.txt").write_text("not a model")
    with pytest.raises(ModelError, match="folder, a .gguf file or a hub id"):
        load_model(ModelConfig(id=str(tmp_path / "config.txt")))
    with pytest.raises(ModelError, match=r"safetensors.*\*\.bin"):
        load_model(ModelConfig(id=str(tmp_path)))


def test_hub_id_offline_says_to_download(tmp_path: Path) -> None:
    # conftest sets HF_HUB_OFFLINE=1, and this machine has no route to the hub anyway.
    with pytest.raises(ModelError, match=r"'someorg/some-model'.*download it first.*local"):
        load_model(ModelConfig(id="someorg/some-model", cache_dir=str(tmp_path)))


def test_gguf_file_converts_once_and_matches(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gguf = save_tiny_gguf(tmp_path / "src" / "tiny.gguf")
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    stale = cache / "models" / ".gguf-0000.tmp-leftover"
    caplog.set_level(logging.INFO, logger="sea_dist.provision")
    original, tokenizer = build_tiny_model("qwen2")

    loaded = load_model(ModelConfig(id=str(gguf), cache_dir=str(cache)))
    assert loaded.architecture == "qwen2" and loaded.revision.startswith("sha256:")
    assert loaded.model_id == str(gguf)
    torch.testing.assert_close(
        _logits(loaded.model, loaded.tokenizer), _logits(original, tokenizer)
    )
    assert tokenizer(TEXTS)["input_ids"] == loaded.tokenizer(TEXTS)["input_ids"]

    # same file through ModelConfig.gguf_file within its folder: cached, no second conversion
    again = load_model(
        ModelConfig(id=str(gguf.parent), gguf_file="tiny.gguf", cache_dir=str(cache))
    )
    assert again.revision == loaded.revision
    conversions = [r for r in caplog.records if r.getMessage().startswith("converting GGUF")]
    assert len(conversions) == 1
    folders = [p.name for p in (cache / "models").iterdir() if not p.name.startswith(".")]
    assert folders == [f"gguf-{loaded.revision.removeprefix('sha256:')}"]
    assert not stale.exists()


def test_concurrent_conversions_convert_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gguf = save_tiny_gguf(tmp_path / "tiny.gguf")
    cache = tmp_path / "cache"
    caplog.set_level(logging.INFO, logger="sea_dist.provision")
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(convert_gguf(gguf, cache)[0]))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert (results[0] / "model.safetensors").is_file()
    assert sum(r.getMessage().startswith("converting GGUF") for r in caplog.records) == 1
    assert not list((cache / "models").glob(".*.tmp-*"))


def test_failed_conversion_leaves_no_folder(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="gguf file: expected a GGUF model"):
        load_model(ModelConfig(id=str(broken), cache_dir=str(cache)))
    leftovers = [p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEA_DIST_CACHE", str(tmp_path))
    assert default_cache_dir() == Path.home() / ".cache" / "sea-dist"  # the library's default
    config = apply_environment(SeaConfig())  # the CLI and jobs: $SEA_DIST_CACHE
    assert cache_root(config.model) == tmp_path
    given = SeaConfig(model=ModelConfig(cache_dir=str(tmp_path / "given")))
    assert cache_root(apply_environment(given).model) == tmp_path / "given"  # config wins
    monkeypatch.delenv("SEA_DIST_CACHE")
    assert cache_root(apply_environment(SeaConfig()).model) == default_cache_dir()


def test_demo_model_loads_and_knows_paris(demo_model_dir: Path) -> None:
    assert (demo_model_dir / "model.safetensors").is_file()
    loaded = load_model(ModelConfig(id=DEMO_MODEL_ID))
    assert loaded.revision == DEMO_PACKAGE
    assert (loaded.architecture, loaded.n_layers, loaded.d_model) == ("llama", 30, 576)
    assert loaded.tokenizer.pad_token is not None
    batch = loaded.tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = loaded.model.generate(**batch, max_new_tokens=2, do_sample=False)  # type: ignore[operator]
    completion = loaded.tokenizer.decode(out[0, batch["input_ids"].shape[1] :])
    assert isinstance(completion, str) and completion.startswith(" Paris")
