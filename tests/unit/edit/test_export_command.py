"""``sea-dist export``: refusals (one line, exit 2, nothing written) and replacing an old export.

The plain-transformers load and the generation comparison are in
tests/integration/test_export_plain_transformers.py (they need a subprocess without sea_dist).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from synthetic_fit import write_synthetic_fit
from tiny_models import save_tiny_model

from sea_dist.cli import main


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    """A tiny llama folder, a config naming it, and a foldable synthetic fit of it."""
    model = save_tiny_model("llama", tmp_path / "model")
    config = tmp_path / "export.yaml"
    config.write_text(f"model:\n  id: {model}\n", encoding="utf-8")
    return {
        "root": tmp_path,
        "model": model,
        "config": config,
        "fit": _fit(tmp_path / "fit", model),
    }


def _fit(folder: Path, model: Path, **overrides: Any) -> Path:
    arguments: dict[str, Any] = {
        "d_model": 32,
        "n_model_layers": 3,
        "layers": (0, 2),
        "model_id": str(model),
        "store_attrs": {"site": "mlp"},
        "fit_config": {"combine": "average"},
    } | overrides
    return write_synthetic_fit(folder, **arguments)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["export", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str) -> str:
    """The single ``sea-dist: error:`` line (progress bars of a model load may surround it)."""
    lines = [line for line in err.splitlines() if line.startswith("sea-dist: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_help_explains_what_folds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["export", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--out DIR" in text and "--overwrite" in text
    assert "combine average" in text and "apply_edit" in text


def test_refuses_a_recipe_that_cannot_fold(
    workspace: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    fit = workspace["fit"]
    (fit / "recipe.json").write_text(
        json.dumps({"schema": 1, "alpha": 0.5, "positions": "generated", "combine": "average"})
    )
    before = _entries(workspace["root"])
    code, out, err = _run(
        capsys,
        str(fit),
        "--out",
        str(workspace["root"] / "out"),
        "--config",
        str(workspace["config"]),
    )
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert "alpha 0.5" in line and "positions 'generated'" in line
    assert "apply_edit" in line and "load_edit" in line
    assert _entries(workspace["root"]) == before  # no --out, no temporary folder


def test_refuses_a_non_linear_fit_before_loading_the_model(
    workspace: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    fit = _fit(workspace["root"] / "l2", workspace["model"], store_attrs={}, fit_config={})
    # the default synthetic fit: combine l2 at the residual site
    code, _, err = _run(
        capsys, str(fit), "--out", str(workspace["root"] / "out"), "--config", "/no/such.yaml"
    )
    assert code == 2 and "no/such.yaml" in _one_error_line(err)  # a missing config: one line
    # a model that does not exist: the refusal must come before any model load
    config = workspace["root"] / "missing-model.yaml"
    config.write_text("model:\n  id: /no/such/model\n", encoding="utf-8")
    code, _, err = _run(
        capsys, str(fit), "--out", str(workspace["root"] / "out"), "--config", str(config)
    )
    line = _one_error_line(err)
    assert code == 2 and "combine 'l2'" in line and "site 'residual'" in line
    assert not (workspace["root"] / "out").exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"model_id": "someone/other-model"}, "model_id"), ({"d_model": 16}, "d_model")],
)
def test_refuses_an_edit_fitted_on_another_model(
    workspace: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    overrides: dict[str, Any],
    field: str,
) -> None:
    fit = _fit(workspace["root"] / "other", workspace["model"], **overrides)
    before = _entries(workspace["root"])
    code, out, err = _run(
        capsys,
        str(fit),
        "--out",
        str(workspace["root"] / "out"),
        "--config",
        str(workspace["config"]),
    )
    assert code == 2 and out == ""
    assert f"{field}: expected" in _one_error_line(err)
    assert _entries(workspace["root"]) == before


def test_refuses_an_unknown_reference(
    workspace: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = workspace["root"]
    before = _entries(root)
    code, _, err = _run(
        capsys,
        "nothing-here@latest",
        "--out",
        str(root / "out"),
        "--registry",
        str(root / "registry"),
        "--config",
        str(workspace["config"]),
    )
    assert code == 2 and "nothing-here" in _one_error_line(err)
    assert _entries(root) == before  # neither --out nor the registry folder was created


def test_non_empty_out_is_refused_and_user_files_are_never_deleted(
    workspace: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = workspace["root"] / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = [str(workspace["fit"]), "--out", str(out), "--config", str(workspace["config"])]
    for extra in ([], ["--overwrite"]):
        code, _, err = _run(capsys, *argv, *extra)
        assert code == 2 and "notes.txt" in _one_error_line(err)
        assert _entries(out) == {"notes.txt"} and (out / "notes.txt").read_text() == "mine"
    a_file = workspace["root"] / "a-file"
    a_file.write_text("mine")
    code, _, err = _run(
        capsys, str(workspace["fit"]), "--out", str(a_file), "--config", str(workspace["config"])
    )
    assert code == 2 and "a file" in _one_error_line(err) and a_file.read_text() == "mine"


def test_export_then_overwrite_replaces_only_a_previous_export(
    workspace: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, out = workspace["root"], workspace["root"] / "out"
    out.mkdir()  # an empty folder is fine without --overwrite
    argv = [str(workspace["fit"]), "--out", str(out), "--config", str(workspace["config"])]
    code, stdout, _ = _run(capsys, *argv)
    assert code == 0
    assert "folded: site mlp, layers 0, 2" in stdout and "model.layers.2.mlp.down_proj" in stdout
    assert "mlp_bias = true" in stdout and "verified" in stdout
    first = (out / "model.safetensors").read_bytes()
    assert {"config.json", "model.safetensors", "sea-dist-edit.json", "tokenizer.json"} <= _entries(
        out
    )

    code, _, err = _run(capsys, *argv)  # a previous export: needs --overwrite
    assert code == 2 and "--overwrite" in _one_error_line(err)

    other = _fit(root / "fit2", workspace["model"], seed=3)
    code, stdout, _ = _run(
        capsys,
        str(other),
        "--out",
        str(out),
        "--config",
        str(workspace["config"]),
        "--overwrite",
        "--json",
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["layers"] == [0, 2] and summary["bias_flag"] == "mlp_bias"
    assert summary["out"] == str(out) and summary["verified"] is True
    assert (out / "model.safetensors").read_bytes() != first
    assert json.loads((out / "sea-dist-edit.json").read_text())["source"] == str(other)
    leftovers = [name for name in os.listdir(root) if name.startswith(".out.")]
    assert leftovers == []  # the temporary and the replaced folder are gone


def test_a_late_refusal_leaves_no_temporary_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # qwen2 hard-codes bias=False: a centred edit folds in memory but cannot be saved
    model = save_tiny_model("qwen2", tmp_path / "model")
    config = tmp_path / "export.yaml"
    config.write_text(f"model:\n  id: {model}\n", encoding="utf-8")
    fit = _fit(tmp_path / "fit", model, store_attrs={"site": "mlp", "architecture": "qwen2"})
    before = _entries(tmp_path)
    code, _, err = _run(capsys, str(fit), "--out", str(tmp_path / "out"), "--config", str(config))
    assert code == 2 and "bias=False hard-coded" in _one_error_line(err)
    assert _entries(tmp_path) == before
