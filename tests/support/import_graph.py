"""The import graph of the project's packages, read from their source (no import).

An edge `a -> b` is an import that runs when `a` is imported: at module level,
in a class body, under a module-level `if`/`try`. Imports inside a function
run later, and those under `if TYPE_CHECKING:` never: neither is an edge.
`from p import name` is an edge to `p.name` when that is a module, else to
`p` (its `__init__`), so a package's `__init__` takes part like any module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of `packages` (directories under `root`) by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_at_import(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _run_at_import(node.body)
            yield from _run_at_import(node.orelse)
        elif isinstance(node, ast.ClassDef):
            yield from _run_at_import(node.body)
        elif isinstance(node, (ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                yield from _run_at_import(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _run_at_import(handler.body)


def graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """{module: the project modules it imports when imported}."""
    known = modules(root, packages)
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in _run_at_import(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            edges[name].update(t for t in targets if t in known and t != name)
    return edges


def loaded_with(edges: dict[str, set[str]], module: str) -> dict[str, list[str]]:
    """Every project module importing `module` loads, each with the chain that loads it.

    Follows the edges from `module`, and from each module reached to the
    packages holding it (importing `a.b.c` runs `a/__init__` and `a/b/__init__`
    first). The chain starts at `module` and ends at the module it explains.
    """
    chains = {module: [module]}
    todo = [module]
    while todo:
        current = todo.pop()
        parts = current.split(".")
        parents = {".".join(parts[:i]) for i in range(1, len(parts))}
        for target in sorted(edges[current] | (parents & edges.keys())):
            if target not in chains:
                chains[target] = [*chains[current], target]
                todo.append(target)
    return chains


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(groups)
