"""Check huajia's imports: no cycles between modules, and every import follows the layer order
(docs/design.md).

    python scripts/check_imports.py [SRC]      # SRC: the folder that holds huajia/ (default: src)

Prints one line per problem and exits 1, or prints a summary line and exits 0. Pure stdlib (``ast``).

What counts as an import: every ``huajia`` import anywhere in a module — at module level, inside a
function (run when it runs; a function-level import that hides a cycle is still a cycle) and under
``if TYPE_CHECKING:`` (labelled; such a cycle is a design smell even though it never runs).
``from huajia.x import y`` means the module ``huajia.x.y`` when that is a module, else the module a
package re-exports ``y`` from (``from huajia import Engine`` means ``huajia.engine.engine``), else
``huajia.x``. Relative imports are resolved. Dynamic imports (``import_module``) are not seen.

The layer order (docs/design.md "Layout"; a module may import its own layer and the layers before it):

    base       huajia (the package's __init__), errors, params, imagefolder, drawing, ray_cluster,
               scorers
    world
    engine
    thinking
    training | curation | evaluation | batch    siblings: none imports another
    serving
    cli        huajia.cli, huajia.cli_*, huajia.__main__ (the entry points)

The package's ``__init__`` is in the base layer: at run time it imports only the base (``import
huajia`` loads no torch); its ``if TYPE_CHECKING:`` imports, which mirror its lazy table for type
checkers, are left out of both checks.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

PACKAGE = "huajia"

# The layers, lowest first: layer → the module prefixes in it ("*": any suffix). Layers of one
# rank are siblings, which must not import each other.
RANKS: list[dict[str, tuple[str, ...]]] = [
    {"base": ("huajia", "huajia.errors", "huajia.params", "huajia.imagefolder", "huajia.drawing",
              "huajia.ray_cluster", "huajia.scorers")},
    {"world": ("huajia.world",)},
    {"engine": ("huajia.engine",)},
    {"thinking": ("huajia.thinking",)},
    {"training": ("huajia.training",), "curation": ("huajia.curation",),
     "evaluation": ("huajia.evaluation",), "batch": ("huajia.batch",)},
    {"serving": ("huajia.serving",)},
    {"cli": ("huajia.cli", "huajia.cli_*", "huajia.__main__")},
]
LAYERS = [(layer, prefixes) for rank in RANKS for layer, prefixes in rank.items()]
RANK = {layer: i for i, rank in enumerate(RANKS) for layer in rank}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: Path
    line: int
    kind: str  # "module", "function" or "type-checking"

    def where(self) -> str:
        label = {"module": "", "function": ", inside a function", "type-checking": ", under TYPE_CHECKING"}
        return f"{self.path}:{self.line}{label[self.kind]}"


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root``: dotted name → file."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST, kind: str = "module") -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement with where it runs: at import, inside a function, or never."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, kind
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), "type-checking")
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), kind)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _imports(node, "function" if kind == "module" else kind)
        else:
            yield from _imports(node, kind)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _reexports(trees: dict[str, ast.AST], known: dict[str, Path]) -> dict[str, dict[str, str]]:
    """For each package: name → the module its ``__init__`` imports that name from."""
    table: dict[str, dict[str, str]] = {}
    for name, tree in trees.items():
        if known[name].name != "__init__.py":
            continue
        for node, _ in _imports(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module in known:
                for alias in node.names:
                    table.setdefault(name, {})[alias.asname or alias.name] = node.module
    return table


def edges(root: Path) -> tuple[list[Edge], list[str], dict[str, Path]]:
    """Every import of a ``huajia`` module, the problems found reading them, and the modules."""
    known = modules(root)
    trees = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in known.items()}
    reexports = _reexports(trees, known)
    found, problems = [], []
    for name, tree in trees.items():
        path = known[name].relative_to(root.parent) if root.parent in known[name].parents else known[name]
        for node, kind in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _absolute(node, name, known[name].name == "__init__.py")
                targets = []
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in known:
                        targets.append(full)
                    elif alias.name in reexports.get(base, {}):
                        targets.append(reexports[base][alias.name])
                    else:
                        targets.append(base)
            for target in targets:
                if target != PACKAGE and not target.startswith(PACKAGE + "."):
                    continue
                if target not in known:
                    problems.append(f"{path}:{node.lineno}: {name} imports {target}, which is not a module "
                                    "of the package")
                elif target != name and not (name == PACKAGE and kind == "type-checking"):
                    found.append(Edge(name, target, path, node.lineno, kind))
    return found, problems, known


def layer_of(module: str) -> str | None:
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if prefix.endswith("*"):
                if module.startswith(prefix[:-1]):
                    return layer
            elif module == prefix or (prefix != PACKAGE and module.startswith(prefix + ".")):
                return layer
    return None


def layer_problems(found: list[Edge], known: dict[str, Path]) -> list[str]:
    problems = [f"{path}: {name} is in no layer; add it to LAYERS in scripts/check_imports.py"
                for name, path in known.items() if layer_of(name) is None]
    for edge in found:
        source, target = layer_of(edge.source), layer_of(edge.target)
        if source is None or target is None or source == target:
            continue
        if RANK[target] > RANK[source]:
            problems.append(f"{edge.where()}: {edge.source} ({source}) imports {edge.target} ({target}): "
                            "against the layer order")
        elif RANK[target] == RANK[source]:
            problems.append(f"{edge.where()}: {edge.source} ({source}) imports {edge.target} ({target}): "
                            "siblings must not import each other")
    return problems


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component))
    return result


def _cycle_through(start: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path start → … → start inside one component (breadth first)."""
    parent: dict[str, str] = {}
    queue = [start]
    for node in queue:
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, start]
            if child not in parent:
                parent[child] = node
                queue.append(child)
    raise AssertionError("a component without a cycle")


def cycle_problems(found: list[Edge]) -> list[str]:
    graph: dict[str, set[str]] = {}
    first: dict[tuple[str, str], Edge] = {}
    for edge in found:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
        key = (edge.source, edge.target)
        if key not in first or (first[key].kind != "module" and edge.kind == "module"):
            first[key] = edge  # a module-level import names the edge when there is one
    problems = []
    for component in _components(graph):
        if len(component) < 2:
            continue
        path = _cycle_through(component[0], set(component), graph)
        steps = "; ".join(f"{a} -> {b} ({first[a, b].where()})" for a, b in pairwise(path))
        more = (f" [component of {len(component)}: {', '.join(component)}]"
                if len(component) > len(path) - 1 else "")
        problems.append(f"import cycle: {steps}{more}")
    return problems


def find_problems(root: str | Path) -> list[str]:
    """Every import problem of the package in ``root`` (the folder holding ``huajia/``), one line each."""
    found, problems, known = edges(Path(root))
    return problems + cycle_problems(found) + layer_problems(found, known)


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "src"
    problems = find_problems(root)
    for line in problems:
        print(line)
    if problems:
        return 1
    found, _, known = edges(root)
    print(f"check_imports: {len(known)} modules, {len(found)} imports of huajia modules, no cycles, "
          "the layer order kept")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
