"""The bad-input corpus through the real ``sea-dist`` command (in-process) and the data loaders.

Each case must exit 2 with one line that says what was expected, and leave every file of the
workspace (registry, activation stores, fit outputs, inputs, working directory) byte-identical:
the test hashes the whole tree before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_outcome import refusal_problems, run_cli
from reliability_corpus import CLI_CASES, DEMO_CASES, CliCase, DemoCase
from reliability_workspace import Workspace
from tree_snapshot import changes, tree_digest

from sea_dist.config import DataConfig
from sea_dist.data import load_demonstrations
from sea_dist.errors import DataError, SeaDistError
from sea_dist.layers import resolve_layers, site_module

pytestmark = pytest.mark.bad_input


def _param(case: CliCase) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id=f"{case.category}-{case.id}", marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CLI_CASES])
def test_cli_refuses_bad_input(
    case: CliCase, in_workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree_digest(in_workspace.root)
    outcome = run_cli(in_workspace.expand(case.argv), capsys)
    after = tree_digest(in_workspace.root)
    assert refusal_problems(outcome, case.expect) == []
    assert changes(before, after) == []


@pytest.mark.parametrize("case", DEMO_CASES, ids=[c.id for c in DEMO_CASES])
def test_loader_refuses_bad_demonstrations(case: DemoCase, in_workspace: Workspace) -> None:
    before = tree_digest(in_workspace.root)
    path = Path(in_workspace.root, "inputs", case.path)
    with pytest.raises(DataError) as info:
        load_demonstrations(
            DataConfig(source=case.source, path=str(path), columns=dict(case.columns))  # type: ignore[arg-type]
        )
    message = str(info.value)
    assert "\n" not in message and "expected" in message and case.expect in message
    assert len(message) < 2000  # a 1 MB row is named, not echoed
    assert changes(before, tree_digest(in_workspace.root)) == []


# -- unknown layers and sites on a real (tiny) model -----------------------------------------------


def _edit(
    d_model: int = 32, n_layers: int = 3, layers: tuple[int, ...] = (1,), **kw: object
) -> Any:
    import torch

    from sea_dist.edit import LayerProjection, SeaEdit

    eye = torch.eye(d_model)
    fields: dict[str, Any] = dict(
        layers={L: LayerProjection(L, eye[:, :2].clone(), eye[:, 2:3].clone()) for L in layers},
        site="residual",
        site_template=None,
        combine="l2",
        feature_map="linear",
        feature_map_scale=1.0,
        model_id="tiny-llama",
        architecture="llama",
        d_model=d_model,
        n_model_layers=n_layers,
        centred=False,
        source="reliability",
    )
    fields.update(kw)
    return SeaEdit(**fields)


def _apply(model: Any, edit: Any, **kw: Any) -> None:
    from sea_dist.edit import apply_edit

    apply_edit(model, edit, **kw).remove()


MODEL_CASES: dict[str, tuple[Callable[[Any], object], str]] = {
    "layer-out-of-range": (lambda m: resolve_layers((99,), m.n_layers), "has 3"),
    "layer-last-too-many": (lambda m: resolve_layers("last-9", m.n_layers), "at most 3"),
    "site-unknown": (lambda m: site_module(m.model, 0, "ffn"), "site"),
    "site-layer-out-of-range": (lambda m: site_module(m.model, 99, "mlp"), "layer"),
    "site-template-unknown-module": (
        lambda m: site_module(m.model, 0, "residual", "model.layers.{layer}.nothing"),
        "module path",
    ),
    "edit-d-model-mismatch": (lambda m: _apply(m, _edit(d_model=16)), "d_model"),
    "edit-layer-count-mismatch": (lambda m: _apply(m, _edit(n_layers=30)), "n_model_layers"),
    "edit-layer-beyond-model": (lambda m: _apply(m, _edit(layers=(1, 7))), "indices below 3"),
    "edit-layer-not-fitted": (lambda m: _apply(m, _edit(), layers=[2]), "layers it holds"),
    "edit-site-template-unknown": (
        lambda m: _apply(m, _edit(site_template="model.layers.{layer}.nothing")),
        "module path",
    ),
    "edit-other-model": (lambda m: _apply(m, _edit(model_id="another-model")), "model_id"),
}


def _state(model: Any) -> tuple[str, int]:
    """Hash of every parameter and buffer, and the number of hooks installed anywhere."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return digest.hexdigest(), hooks


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_unknown_layers_and_sites_are_refused(case: str) -> None:
    from tiny_models import tiny_loaded_model

    loaded = tiny_loaded_model("llama")
    call, expect = MODEL_CASES[case]
    before = _state(loaded.model)
    with pytest.raises(SeaDistError) as info:
        call(loaded)
    message = str(info.value)
    assert "\n" not in message and "expected" in message and expect in message
    assert _state(loaded.model) == before  # weights untouched, no hook left behind
