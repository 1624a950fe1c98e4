"""``sea-dist export`` end to end: a published edit folded into a tiny llama, the folder loaded by
plain transformers in a subprocess where ``sea_dist`` cannot be imported, and its greedy
generation compared with the hooked model's in this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from synthetic_fit import write_synthetic_fit
from tiny_models import save_tiny_model

from sea_dist.cli import main
from sea_dist.config import ModelConfig
from sea_dist.edit import apply_edit, load_edit
from sea_dist.models import load_model
from sea_dist.registry.filesystem import Registry

PROMPTS = [[1, 60, 61, 62, 33, 90, 91, 7], [1, 70, 71, 72, 73, 74, 75, 76]]
NEW_TOKENS = 12

_PLAIN_GENERATE = textwrap.dedent(
    """
    import json, sys

    class _NoSeaDist:  # the exported folder must load without sea-dist
        def find_spec(self, name, path=None, target=None):
            if name == "sea_dist" or name.startswith("sea_dist."):
                raise ImportError("sea_dist is blocked in this check")
            return None

    sys.meta_path.insert(0, _NoSeaDist())
    try:
        import sea_dist  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("sea_dist is importable")
    import torch
    from transformers import AutoModelForCausalLM

    folder, prompts, new_tokens = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        tokens = model.generate(
            torch.tensor(prompts), max_new_tokens=new_tokens, do_sample=False, pad_token_id=0
        )
    assert not [m for m in sys.modules if m.split(".")[0] == "sea_dist"]
    print(json.dumps(tokens.tolist()))
    """
)


def _generate_without_sea_dist(folder: Path, cwd: Path) -> list[list[int]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        # -I: no PYTHONPATH, no user site, no cwd on sys.path (the checkout is not importable)
        [
            sys.executable,
            "-I",
            "-c",
            _PLAIN_GENERATE,
            str(folder),
            json.dumps(PROMPTS),
            str(NEW_TOKENS),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    tokens: Any = json.loads(result.stdout.strip().splitlines()[-1])
    return [list(map(int, row)) for row in tokens]


def _greedy(model: torch.nn.Module) -> list[list[int]]:
    with torch.no_grad():
        tokens = model.generate(  # type: ignore[operator]
            torch.tensor(PROMPTS), max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0
        )
    return [list(map(int, row)) for row in tokens.tolist()]


def test_exported_folder_generates_like_the_hooked_model_without_sea_dist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = save_tiny_model("llama", tmp_path / "model")
    fit = write_synthetic_fit(
        tmp_path / "fit",
        d_model=32,
        n_model_layers=3,
        layers=(0, 2),
        k_pos=6,
        k_neg=6,
        model_id=str(model_dir),
        store_attrs={"site": "mlp"},
        fit_config={"combine": "average"},
    )
    Registry(str(tmp_path / "registry")).publish(fit, "tiny-export")
    config = tmp_path / "export.yaml"
    config.write_text(f"model:\n  id: {model_dir}\n", encoding="utf-8")
    # relative --out and --registry resolve against $SEA_DIST_OUTPUT_BASE, not the cwd
    monkeypatch.setenv("SEA_DIST_OUTPUT_BASE", str(tmp_path))
    monkeypatch.chdir(tmp_path / "model")

    code = main(
        ["export", "tiny-export@latest", "--out", "export", "--registry", "registry",
         "--config", str(config), "--json"]
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    out = tmp_path / "export"
    assert summary["out"] == str(out) and summary["layers"] == [0, 2]
    assert summary["modules"] == ["model.layers.0.mlp.down_proj", "model.layers.2.mlp.down_proj"]

    loaded = load_model(ModelConfig(id=str(model_dir)))
    plain = _greedy(loaded.model)
    edit = load_edit("tiny-export@latest", registry=str(tmp_path / "registry"))
    with apply_edit(loaded, edit):
        hooked = _greedy(loaded.model)
    assert hooked != plain  # the edit changes what the model says: the comparison means something

    assert _generate_without_sea_dist(out, tmp_path) == hooked
