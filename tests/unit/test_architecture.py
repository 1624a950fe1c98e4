"""The import graph of sea_dist and jobs/ keeps the layering written in docs/architecture.md.

Every module is read with :mod:`ast` by :mod:`import_graph` (nothing under test is imported).
Imports at module level, inside functions, under ``if TYPE_CHECKING:`` and module names given as
strings all count for the layering and the cycle checks: a deferred or type-only import is still
a dependency. Only module-level imports count for what a serving image loads.

The ratchet: ``KNOWN_VIOLATIONS``, ``KNOWN_PACKAGE_CYCLES`` and ``KNOWN_MODULE_CYCLES`` list what
exists today (issue 14's work list). A new violation or cycle fails, and so does a listed one that
has gone, with a message to delete its entry: the lists only shrink.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import pytest
from import_graph import (
    DYNAMIC,
    FUNCTION,
    MODULE,
    TYPING,
    Graph,
    cycles,
    heavy_imports,
    layering_violations,
    loaded_on_import,
    needless_deferrals,
    scan,
    unit_of,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
HERE = "tests/unit/test_architecture.py"

# Layer (imports point to strictly lower layers) and the units each unit may import. A unit is a
# package under sea_dist/, a top-level module of sea_dist/, the root package itself (`sea_dist`:
# __version__) or `jobs` (jobs/*.py). Mirrors the table in docs/architecture.md (tested).
LAYERS: dict[str, tuple[int, set[str]]] = {
    "sea_dist": (0, set()),
    "errors": (0, set()),
    "resources": (0, set()),
    "format": (1, {"errors"}),
    "config_yaml": (1, {"errors"}),
    "feature_maps": (1, {"errors"}),
    "cron": (1, {"errors"}),
    "config": (2, {"config_yaml", "cron", "errors", "format"}),
    "layers": (3, {"config", "errors"}),
    "outputs": (3, {"config", "errors"}),
    "data": (3, {"config", "errors", "resources"}),
    "provision": (3, {"config", "errors", "format"}),
    "models": (4, {"config", "errors", "format", "layers", "provision"}),
    "store": (5, {"errors", "format"}),
    "registry": (6, {"sea_dist", "config", "errors", "format", "outputs"}),
    "preflight": (6, {"config", "errors", "store"}),
    "collect": (
        7,
        {
            "config",
            "data",
            "errors",
            "layers",
            "models",
            "outputs",
            "provision",
            "store",
        },
    ),
    "fit": (7, {"config", "errors", "feature_maps", "format", "store"}),
    "serve": (7, {"sea_dist", "errors", "format", "registry"}),
    "edit": (
        7,
        {"registry", "config", "errors", "feature_maps", "format", "layers"},
    ),
    "evaluate": (
        8,
        {"config", "data", "edit", "errors", "format", "models"},
    ),
    "studies": (
        9,
        {
            "collect",
            "config",
            "data",
            "edit",
            "errors",
            "evaluate",
            "feature_maps",
            "fit",
            "format",
            "layers",
            "models",
            "outputs",
        },
    ),
    "schedule": (9, {"registry", "config", "cron", "data", "errors", "format", "provision"}),
    "cli": (
        10,
        {
            "sea_dist",
            "errors",
            "format",
            "cron",
            "config",
            "layers",
            "outputs",
            "data",
            "provision",
            "models",
            "store",
            "registry",
            "preflight",
            "serve",
            "collect",
            "fit",
            "edit",
            "evaluate",
            "studies",
            "schedule",
        },
    ),
    "jobs": (
        11,
        {
            "registry",
            "cli",
            "collect",
            "config",
            "evaluate",
            "fit",
        },
    ),
}

# The ratchet. Keys: (importing module, imported module). Delete an entry when it is fixed.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}

# Strongly connected components of the unit graph (packages and top-level modules).
KNOWN_PACKAGE_CYCLES: dict[tuple[str, ...], str] = {}

# Strongly connected components of the module graph (a cycle inside one package counts here).
KNOWN_MODULE_CYCLES: dict[tuple[str, ...], str] = {}

# What a serving image (torch + safetensors) must not load when it imports these packages.
SERVING_PACKAGES = ("sea_dist.edit", "sea_dist.format")
DISTRIBUTED_STACK = frozenset({"ray", "dask", "distributed", "zarr", "pyarrow", "matplotlib"})

# Imports inside functions are for optional dependencies only (issue 14): a module that can run in
# the base install defers what an extra brings. Beyond that, the entry layer may defer the heavy
# base libraries so `sea-dist --help` answers in 0.2 s instead of 2-4 s, and these pairs are
# deferred for the reason given.
ENTRY_HEAVY = {"sea_dist.cli": ("torch", "transformers"), "jobs": ("torch", "transformers")}
DEFERRED_FOR_A_REASON: dict[tuple[str, str], str] = {
    ("sea_dist.registry.loader", "torch"): "an artifact is read as numpy without torch "
    "(tests/unit/registry/test_artifact_loader_imports.py); torch only for framework='torch'",
    ("sea_dist.edit.export", "transformers"): "importing sea_dist.edit loads torch only; "
    "transformers loads when an export is verified",
    ("sea_dist.feature_maps", "torch"): "the fit applies the maps to numpy arrays: its Dask "
    "workers do not load torch; torch loads when the edit applies a map to a tensor",
    ("sea_dist.fit.pipeline", "torch"): "a fit on the CPU (numpy) loads no torch",
    ("sea_dist.fit.backend", "torch"): "a fit on the CPU (numpy) loads no torch",
    ("sea_dist.provision", "torch"): "the scheduler (a long-running cron process) finds the demo "
    "model without loading torch or transformers; they load to convert a GGUF",
    ("sea_dist.provision", "transformers"): "as for torch",
    ("sea_dist.schedule.fingerprint", "transformers"): "the scheduler loads a tokenizer only "
    "for a chat template",
    ("sea_dist.evaluate.harness_tasks", "datasets"): "part of the lm-eval extra (lm-eval's task "
    "API takes a datasets.Dataset), imported beside lm_eval",
}

K = TypeVar("K")


def ratchet(found: Mapping[K, str], known: Mapping[K, str], table: str) -> list[str]:
    """Failure messages: entries found but not known (new), and known but not found (fixed)."""
    problems = [
        f"NEW: {key}\n      {found[key]}\n    Move the code so imports point down the layers of "
        "docs/architecture.md (do not add it to the known list to make this pass)."
        for key in found
        if key not in known
    ]
    problems += [
        f"FIXED: {key} no longer occurs. Delete its entry from {table} in {HERE} "
        "(and its line in docs/architecture.md) so it cannot come back."
        for key in known
        if key not in found
    ]
    return problems


@pytest.fixture(scope="module")
def graph() -> Graph:
    return scan(ROOT, ("sea_dist", "jobs"), "sea_dist")


def test_every_unit_has_a_row_and_rows_point_down(graph: Graph) -> None:
    units = {unit_of(module, "sea_dist") for module in graph.files}
    assert units - LAYERS.keys() == set(), "new package or module: give it a row in LAYERS"
    assert LAYERS.keys() - units == set(), "these units no longer exist: delete their rows"
    upward = [
        f"{unit} (layer {layer}) may import {other} (layer {LAYERS[other][0]})"
        for unit, (layer, allowed) in LAYERS.items()
        for other in allowed
        if LAYERS[other][0] >= layer
    ]
    assert upward == [], "rows may only name lower layers:\n" + "\n".join(upward)


def test_rows_name_only_imports_that_exist(graph: Graph) -> None:
    """The table is a map of the code as it is: an allowance nothing uses any more goes."""
    used: dict[str, set[str]] = {}
    for edge in graph.edges:
        if (edge.source, edge.target) not in KNOWN_VIOLATIONS:
            used.setdefault(unit_of(edge.source, "sea_dist"), set()).add(
                unit_of(edge.target, "sea_dist")
            )
    unused = [
        f"{unit} -> {other}"
        for unit, (_, allowed) in LAYERS.items()
        for other in sorted(allowed - used.get(unit, set()))
    ]
    assert unused == [], (
        "nothing imports these any more; delete them from the rows of LAYERS in "
        f"{HERE} and of the table in docs/architecture.md: {unused}"
    )


def test_layering_matches_docs_table() -> None:
    """docs/architecture.md has the same table (`| `unit` | layer | `a`, `b` |`)."""
    rows: dict[str, tuple[int, set[str]]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\|\s*`(\w+)`\s*\|\s*(\d+)\s*\|(.*)\|", line.strip())
        if match:
            rows[match[1]] = (int(match[2]), set(re.findall(r"`(\w+)`", match[3])))
    assert rows == LAYERS


def test_imports_follow_the_layering(graph: Graph) -> None:
    problems = ratchet(layering_violations(graph, LAYERS), KNOWN_VIOLATIONS, "KNOWN_VIOLATIONS")
    hint = (
        "\nAn import that already points down the layers but is new to its unit: add the unit to "
        "the row, in LAYERS and in docs/architecture.md (table and paragraph)."
    )
    assert problems == [], "\n".join(problems) + hint


def test_no_new_cycles_between_packages(graph: Graph) -> None:
    found = cycles(graph, by_unit=True, layers=LAYERS)
    problems = ratchet(found, KNOWN_PACKAGE_CYCLES, "KNOWN_PACKAGE_CYCLES")
    assert problems == [], "\n".join(problems)


def test_no_new_cycles_between_modules(graph: Graph) -> None:
    found = cycles(graph, by_unit=False)
    problems = ratchet(found, KNOWN_MODULE_CYCLES, "KNOWN_MODULE_CYCLES")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("package", SERVING_PACKAGES)
def test_serving_packages_load_no_distributed_stack(graph: Graph, package: str) -> None:
    assert package in graph.files
    assert len(loaded_on_import(graph, package)) > 1  # the walk follows imports at all
    assert heavy_imports(graph, package, DISTRIBUTED_STACK) == []


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def optional_import_names() -> set[str]:
    """Import names of the packages pyproject's runtime extras add to the base install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = {_requirement_name(r) for r in project["dependencies"]}
    extras = {
        _requirement_name(r)
        for extra, requirements in project["optional-dependencies"].items()
        if extra != "dev"
        for r in requirements
        if not r.startswith("sea-dist")
    } - base
    return {
        name
        for name, distributions in importlib.metadata.packages_distributions().items()
        if any(_requirement_name(d) in extras for d in distributions)
    }


def test_optional_import_names_come_from_the_extras() -> None:
    names = optional_import_names()
    assert {"ray", "dask", "zarr", "pyarrow", "fsspec", "matplotlib", "lm_eval"} <= names
    assert not names & {"torch", "transformers", "safetensors", "numpy", "json"}


def test_imports_are_deferred_only_for_optional_dependencies(graph: Graph) -> None:
    problems = needless_deferrals(
        graph, optional_import_names(), ENTRY_HEAVY, DEFERRED_FOR_A_REASON
    )
    assert problems == [], (
        "move these imports to the top of their module (no optional dependency requires "
        "deferring them):\n" + "\n".join(problems)
    )


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_scanner_finds_violations_and_cycles_in_a_synthetic_package(tmp_path: Path) -> None:
    """The checks above cannot pass vacuously: each catches its fault in a toy package."""
    _write(
        tmp_path,
        {
            "toy/__init__.py": "",
            "toy/low/__init__.py": "from toy.low.base import VALUE\n",
            "toy/low/base.py": (
                "import ray\nfrom typing import TYPE_CHECKING\nVALUE = 1\n"
                "if TYPE_CHECKING:\n    from toy.low.other import OTHER\n"
                "def upward():\n    from toy import high\n    return high\n"
            ),
            "toy/low/other.py": "from . import base\nOTHER = base.VALUE\n",
            "toy/high/__init__.py": "",
            "toy/high/mod.py": "from ..low import base\nfrom . import helper\n",
            "toy/high/helper.py": "NAME = 'toy.low.other'\n",
        },
    )
    toy = scan(tmp_path, ["toy"], "toy")
    edges = {(e.source, e.target, e.kind) for e in toy.edges}
    assert ("toy.high.mod", "toy.low.base", MODULE) in edges  # relative, two levels
    assert ("toy.high.mod", "toy.high.helper", MODULE) in edges  # `from . import x`
    assert ("toy.low.base", "toy.high", FUNCTION) in edges
    assert ("toy.low.base", "toy.low.other", TYPING) in edges
    assert ("toy.high.helper", "toy.low.other", DYNAMIC) in edges

    rows = {"toy": (0, set()), "low": (1, set()), "high": (2, {"low"})}
    violations = layering_violations(toy, rows)
    assert list(violations) == [("toy.low.base", "toy.high")]
    assert "toy/low/base.py:7, function" in violations[("toy.low.base", "toy.high")]
    assert list(cycles(toy, by_unit=True)) == [("high", "low")]
    marked = cycles(toy, by_unit=True, layers=rows)[("high", "low")]
    closing = [line.strip() for line in marked.splitlines() if "does not point down" in line]
    assert len(closing) == 1 and closing[0].startswith("low -> high: toy.low.base -> toy.high")
    assert list(cycles(toy, by_unit=False)) == [("toy.low.base", "toy.low.other")]
    assert heavy_imports(toy, "toy.high.mod", {"ray"}) == [
        "toy.high.mod loads ray: toy.high.mod -> toy.low.base (toy/low/base.py:1)"
    ]

    stale = {("toy.low.other", "toy.high"): "fixed long ago"}
    messages = ratchet(violations, stale, "KNOWN_VIOLATIONS")
    assert len(messages) == 2
    assert messages[0].startswith("NEW: ('toy.low.base', 'toy.high')")
    assert "no longer occurs. Delete its entry from KNOWN_VIOLATIONS" in messages[1]
    assert ratchet(violations, {**violations}, "KNOWN_VIOLATIONS") == []


def test_needless_deferrals_are_found_in_a_synthetic_package(tmp_path: Path) -> None:
    """Deferring an optional package passes; stdlib, a light module or a loaded one does not."""
    _write(
        tmp_path,
        {
            "toy/__init__.py": "",
            "toy/light.py": "import json\n",
            "toy/remote.py": "import ray\n",
            "toy/use.py": (
                "import dask\n"
                "def a():\n    import ray\n"  # optional, not loaded here: fine
                "def b():\n    from toy import remote\n"  # loads ray: fine
                "def c():\n    import json\n"  # standard library: needless
                "def d():\n    from toy import light\n"  # loads nothing optional: needless
                "def e():\n    import dask.array\n"  # already loaded at import: needless
                "def f():\n    import torch\n"  # a base package, allowed by name below
            ),
        },
    )
    toy = scan(tmp_path, ["toy"], "toy")
    found = needless_deferrals(toy, {"ray", "dask"}, {}, {("toy.use", "torch"): "reason"})
    assert [problem.split(":")[1] for problem in found] == ["7", "9", "11"]
    entry = needless_deferrals(toy, {"ray", "dask"}, {"toy.use": ("json", "torch")}, {})
    assert [problem.split(":")[1] for problem in entry] == ["11"]  # light loads json: fine
