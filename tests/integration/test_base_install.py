"""The base install (``pip install sea-dist``, no extras) loads a published artifact and edits.

Building a fresh virtualenv would download torch (about 1 GB from PyPI) on every CI run, so the
base install is made exact another way: a subprocess of this interpreter in which every module
that only the extras bring in cannot be imported. The blocked set is computed from the package
metadata (the closure of the ``cluster``, ``eval`` and ``s3`` extras minus the closure of the
base dependencies), so adding a dependency to the wrong list fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import torch
from packaging.requirements import Requirement
from synthetic_fit import write_synthetic_fit

from sea_dist.registry.filesystem import Registry

TESTS = Path(__file__).resolve().parents[1]
EXTRAS = ("cluster", "eval", "s3")
PROMPT = [5, 17, 42, 99, 7]
NEW_TOKENS = 8


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


def _closure(roots: set[str]) -> set[str]:
    """Every distribution ``roots`` need when installed without extras (normalised names)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            wanted = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in wanted:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(text))
    return seen


def _sea_dist_requirements() -> tuple[set[str], set[str]]:
    """(base dependencies, dependencies of the extras), as distribution names."""
    base, extra = set(), set()
    for text in requires("sea-dist") or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None:
            base.add(_name(text))
        elif any(marker.evaluate({"extra": name}) for name in EXTRAS):
            if requirement.name != "sea-dist":
                extra.add(_name(text))
    return base, extra


def blocked_modules() -> list[str]:
    """Top-level modules provided only by distributions the extras add."""
    base, extra = _sea_dist_requirements()
    only_extras = _closure(extra) - _closure(base)
    modules = []
    for module, dists in packages_distributions().items():
        names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists}
        if names and names <= only_extras and module.isidentifier():
            modules.append(module)
    return sorted(modules)


SCRIPT = textwrap.dedent(
    """
    import json, sys
    for name in json.loads(sys.argv[1]):
        sys.modules[name] = None  # `import name` now raises ImportError
    sys.path.insert(0, sys.argv[3])
    import torch
    from tiny_models import build_tiny_model
    from sea_dist.edit import apply_edit, load_edit

    model, _ = build_tiny_model("llama", seed=0)
    edit = load_edit(sys.argv[2])
    prompt = torch.tensor([json.loads(sys.argv[4])])
    with apply_edit(model, edit):
        out = model.generate(prompt, max_new_tokens=int(sys.argv[5]), do_sample=False)
    loaded = sorted(m for m in json.loads(sys.argv[1]) if sys.modules.get(m))
    print(json.dumps({"tokens": out[0].tolist(), "leaked": loaded}))
    """
)


def test_the_base_dependencies_are_the_four_the_issue_names() -> None:
    base, extra = _sea_dist_requirements()
    assert base == {"torch", "transformers", "safetensors", "numpy"}
    assert {"ray", "dask", "zarr", "pyarrow", "fsspec", "matplotlib"} <= extra


def test_base_install_applies_a_published_artifact(tmp_path: Path) -> None:
    from tiny_models import D_MODEL, build_tiny_model

    from sea_dist.edit import apply_edit, load_edit

    blocked = blocked_modules()
    # (fsspec is not among them: huggingface_hub, a transformers dependency, needs it)
    assert {"ray", "dask", "zarr", "pyarrow", "matplotlib"} <= set(blocked)
    fit = write_synthetic_fit(
        tmp_path / "fit", d_model=D_MODEL, n_model_layers=3, layers=(0, 2), model_id="tiny"
    )
    registry = Registry(str(tmp_path / "registry"))
    registry.publish(fit, "tiny-edit")
    folder = registry.download("tiny-edit@latest", tmp_path / "downloaded")

    model, _ = build_tiny_model("llama", seed=0)
    prompt = torch.tensor([PROMPT])
    plain = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False)[0].tolist()
    with apply_edit(model, load_edit(folder)):
        hooked = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False)[0].tolist()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    argv = [json.dumps(blocked), str(folder), str(TESTS), json.dumps(PROMPT), str(NEW_TOKENS)]
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["leaked"] == []
    assert answer["tokens"] == hooked
    assert hooked != plain  # the edit changed the generation, so equality above means something
