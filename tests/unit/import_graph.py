"""An import graph of a source tree, read with :mod:`ast` (nothing is imported).

Used by ``test_architecture.py``. :func:`scan` collects every import of every module: at module
level, inside functions, under ``if TYPE_CHECKING:``, and module names given as strings
(``importlib.import_module`` tables, lazy ``__getattr__`` tables of a package ``__init__``).
Relative imports are resolved. ``from pkg import name`` points to ``pkg.name`` when that is a
module, else to ``pkg`` (and to the module a lazy ``pkg.__init__`` table maps ``name`` to).
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

MODULE, FUNCTION, TYPING, DYNAMIC = "module", "function", "typing", "dynamic"


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` imports ``target`` (both module names) at ``line``."""

    source: str
    target: str
    line: int
    kind: str  # MODULE (runs on import), FUNCTION, TYPING (never runs) or DYNAMIC (a string)


@dataclass
class Graph:
    """The first-party import graph of a source tree."""

    root: Path
    first_party: str
    files: dict[str, Path]
    edges: list[Edge]
    external: dict[str, dict[str, int]]  # module -> third-party top names imported at module level
    deferred_external: list[tuple[str, str, int]]  # (module, top name, line) imported in a function

    def where(self, edge: Edge) -> str:
        path = self.files[edge.source].relative_to(self.root).as_posix()
        return f"{edge.source} -> {edge.target} ({path}:{edge.line}, {edge.kind})"


class _Collector(ast.NodeVisitor):
    """Every import of one module, with the context it runs in."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module.split(".") if is_package else module.split(".")[:-1]
        self.found: list[tuple[str, str | None, int, str]] = []  # (module, name, line, kind)
        self.strings: list[tuple[str, int]] = []
        self._function = 0
        self._typing = 0

    @property
    def kind(self) -> str:
        return TYPING if self._typing else FUNCTION if self._function else MODULE

    def _in_function(self, node: ast.AST) -> None:
        self._function += 1
        self.generic_visit(node)
        self._function -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _in_function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
        if name != "TYPE_CHECKING":
            self.generic_visit(node)
            return
        self._typing += 1
        for child in node.body:
            self.visit(child)
        self._typing -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, None, node.lineno, self.kind))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: `from ..x import y` inside package a.b.c -> a.x
            parts = self.package[: len(self.package) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        for alias in node.names:
            self.found.append((base, alias.name, node.lineno, self.kind))

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and re.fullmatch(r"[A-Za-z_][\w.]*", node.value):
            self.strings.append((node.value, node.lineno))


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def scan(root: Path, folders: Iterable[str], first_party: str) -> Graph:
    """Parse every ``*.py`` under ``root/folder`` and resolve imports of ``first_party``."""
    files = {
        module_name(root, path): path
        for folder in folders
        for path in sorted((root / folder).rglob("*.py"))
        if "__pycache__" not in path.parts
    }
    collected: dict[str, _Collector] = {}
    for module, path in files.items():
        collector = _Collector(module, path.name == "__init__.py")
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        collected[module] = collector
    # Lazy packages map public names to the module that defines them (`{"fit_store": "x.y"}`).
    lazy: dict[str, dict[str, str]] = {}
    for module, path in files.items():
        if path.name != "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                        if value.value in files:
                            lazy.setdefault(module, {})[str(key.value)] = str(value.value)

    def known(name: str) -> str | None:  # the longest prefix of `name` that is a module here
        parts = name.split(".")
        while parts and ".".join(parts) not in files:
            parts.pop()
        return ".".join(parts) if parts else None

    edges: list[Edge] = []
    external: dict[str, dict[str, int]] = {}
    deferred_external: list[tuple[str, str, int]] = []
    for module, collector in collected.items():
        for base, name, line, kind in collector.found:
            top = base.split(".")[0]
            if top != first_party and base not in files and top not in files:
                if kind == MODULE:
                    external.setdefault(module, {}).setdefault(top, line)
                elif kind == FUNCTION:
                    deferred_external.append((module, top, line))
                continue
            targets: list[str] = []
            if name is not None and f"{base}.{name}" in files:
                targets.append(f"{base}.{name}")
            elif (home := known(base)) is not None:
                targets.append(home)
                if name is not None and name in lazy.get(home, {}):
                    targets.append(lazy[home][name])
            edges += [Edge(module, t, line, kind) for t in targets if t != module]
        for text, line in collector.strings:
            if "." in text and text in files and text != module:
                edges.append(Edge(module, text, line, DYNAMIC))
    return Graph(root, first_party, files, list(dict.fromkeys(edges)), external, deferred_external)


def unit_of(module: str, first_party: str) -> str:
    """`sea_dist.fit.svd` -> `fit`, `sea_dist.config` -> `config`, `jobs.fit` -> `jobs`."""
    parts = module.split(".")
    if parts[0] != first_party:
        return parts[0]
    return parts[1] if len(parts) > 1 else first_party


def layering_violations(
    graph: Graph, layers: Mapping[str, tuple[int, set[str]]]
) -> dict[tuple[str, str], str]:
    """Module edges between units that the unit's row does not allow, with where they are."""
    found: dict[tuple[str, str], list[str]] = {}
    for edge in graph.edges:
        src, dst = unit_of(edge.source, graph.first_party), unit_of(edge.target, graph.first_party)
        if src != dst and dst not in layers.get(src, (0, set()))[1]:
            found.setdefault((edge.source, edge.target), []).append(graph.where(edge))
    return {key: "; ".join(places) for key, places in found.items()}


def strongly_connected(adjacency: Mapping[str, set[str]]) -> list[set[str]]:
    """Components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for start in sorted(adjacency):
        if start in index:
            continue
        work = [(start, iter(sorted(adjacency.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(adjacency.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def cycles(
    graph: Graph, by_unit: bool, layers: Mapping[str, tuple[int, set[str]]] | None = None
) -> dict[tuple[str, ...], str]:
    """Import cycles between units (``by_unit``) or modules, each with the edges that form it.

    With ``layers``, unit edges that do not point down the layers are marked: they close the cycle.
    """

    def node(module: str) -> str:
        return unit_of(module, graph.first_party) if by_unit else module

    adjacency: dict[str, set[str]] = {}
    for edge in graph.edges:
        if node(edge.source) != node(edge.target):
            adjacency.setdefault(node(edge.source), set()).add(node(edge.target))
    found = {}
    for component in strongly_connected(adjacency):
        pairs: dict[tuple[str, str], list[str]] = {}
        for edge in graph.edges:
            pair = (node(edge.source), node(edge.target))
            if pair[0] != pair[1] and set(pair) <= component:
                pairs.setdefault(pair, []).append(graph.where(edge))
        lines = []
        for pair, places in sorted(pairs.items()):
            more = f" (+{len(places) - 1} more)" if len(places) > 1 else ""
            mark = ""
            if layers and {*pair} <= layers.keys() and layers[pair[0]][0] <= layers[pair[1]][0]:
                mark = "  <-- does not point down the layers"
            lines.append(
                f"{pair[0]} -> {pair[1]}: {min(places)}{more}{mark}" if by_unit else places[0]
            )
        found[tuple(sorted(component))] = "\n      ".join(lines)
    return found


def loaded_on_import(graph: Graph, start: str) -> dict[str, list[str]]:
    """Modules that ``import start`` runs (module-level imports, parent packages), with a chain."""
    chain: dict[str, list[str]] = {start: [start]}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        parts = module.split(".")
        nexts = [".".join(parts[:i]) for i in range(1, len(parts))]  # parents' __init__ run first
        nexts += [e.target for e in graph.edges if e.source == module and e.kind == MODULE]
        for target in nexts:
            if target in graph.files and target not in chain:
                chain[target] = [*chain[module], target]
                queue.append(target)
    return chain


def heavy_imports(graph: Graph, start: str, forbidden: Iterable[str]) -> list[str]:
    """Forbidden third-party packages that ``import start`` loads, with the import chain."""
    problems = []
    for module, chain in loaded_on_import(graph, start).items():
        for name, line in graph.external.get(module, {}).items():
            if name in forbidden:
                where = f"{graph.files[module].relative_to(graph.root).as_posix()}:{line}"
                problems.append(f"{start} loads {name}: {' -> '.join(chain)} ({where})")
    return sorted(problems)


def packages_loaded_on_import(graph: Graph, start: str) -> set[str]:
    """Third-party top-level names that ``import start`` loads (its module-level closure)."""
    return {
        name for module in loaded_on_import(graph, start) for name in graph.external.get(module, {})
    }


def deferred_imports(graph: Graph) -> dict[tuple[str, int], set[str]]:
    """Every import inside a function (not type-only): ``(module, line) -> packages it loads``.

    A first-party import counts as the third-party packages its target loads at import; a
    third-party or standard-library import as its own top-level name.
    """
    found: dict[tuple[str, int], set[str]] = {}
    for edge in graph.edges:
        if edge.kind == FUNCTION:
            loads = packages_loaded_on_import(graph, edge.target)
            found.setdefault((edge.source, edge.line), set()).update(loads)
    for module, name, line in graph.deferred_external:
        found.setdefault((module, line), set()).add(name)
    return found


def needless_deferrals(
    graph: Graph,
    optional: Iterable[str],
    entry_heavy: Mapping[str, Iterable[str]],
    allowed: Mapping[tuple[str, str], str],
) -> list[str]:
    """Imports inside functions that no optional dependency requires.

    A deferred import earns its place when it loads an ``optional`` package (one the base install
    lacks) that its module does not already load at import. Modules under a prefix of
    ``entry_heavy`` may also defer those packages (the entry layer keeps ``--help`` instant), and
    ``allowed`` names ``(module, package)`` pairs deferred for a stated reason.
    """
    optional = set(optional)
    problems = []
    for (module, line), loads in sorted(deferred_imports(graph).items()):
        worth = set(optional)
        for prefix, extra in entry_heavy.items():
            if module == prefix or module.startswith(prefix + "."):
                worth |= set(extra)
        if (loads & worth) - packages_loaded_on_import(graph, module):
            continue
        if any((module, name) in allowed for name in loads):
            continue
        where = f"{graph.files[module].relative_to(graph.root).as_posix()}:{line}"
        what = ", ".join(sorted(loads)) or "no third-party package"
        problems.append(f"{where}: a deferred import that loads {what}")
    return problems
