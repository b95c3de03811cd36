"""The simulator stays beside the service, not inside it.

`simulator/` may use only the service's payload types (what Iconik sends is
the service's to define); `service/` reaches the simulator only from the
demo and the `caption-bridge simulator` command, lazily, so the image (which
has no simulator) serves and works, and those two commands say plainly that
the simulator is not installed. Every import counts, also those under
`TYPE_CHECKING` or inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPOSITORY

SIMULATOR = REPOSITORY / "simulator"
SERVICE = REPOSITORY / "service"

# What of the service the simulator may import: the payload types only.
ALLOWED_FROM_SERVICE = {"service.intake.payloads"}
# Where the service may import the simulator (the demo, and the command's runner).
SIMULATOR_USERS = {
    "service/commands/demo.py",
    "service/commands/demo_loop.py",
    "service/commands/simulator.py",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPOSITORY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """Each module `path` imports, and whether at module level (not in a function)."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.stem != "__init__" else None
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: resolved against this module's package
                    anchor = (package or _module_name(path)).split(".")
                    base = ".".join([*anchor[: len(anchor) - child.level + 1], base]).strip(".")
                for alias in child.names:  # a submodule, or a name from `base` itself
                    module = f"{base}.{alias.name}"
                    found.append((module if _is_module(module) else base, top))
            visit(child, inner)

    visit(tree, True)
    return found


def _is_module(name: str) -> bool:
    parts = name.split(".")
    return (REPOSITORY.joinpath(*parts).with_suffix(".py")).is_file() or (
        REPOSITORY.joinpath(*parts, "__init__.py")
    ).is_file()


def test_the_simulator_imports_only_the_service_payload_types():
    used = {
        (path.relative_to(REPOSITORY).as_posix(), name)
        for path in sorted(SIMULATOR.rglob("*.py"))
        for name, _ in _imports(path)
        if (name == "service" or name.startswith("service.")) and _is_module(name)
    }
    assert sorted(u for u in used if u[1] not in ALLOWED_FROM_SERVICE) == []


def test_the_service_imports_the_simulator_only_in_the_demo_and_its_command():
    users = {}
    for path in sorted(SERVICE.rglob("*.py")):
        names = [
            (name, top)
            for name, top in _imports(path)
            if name == "simulator" or name.startswith("simulator.")
        ]
        if names:
            users[path.relative_to(REPOSITORY).as_posix()] = names
    assert set(users) <= SIMULATOR_USERS, sorted(set(users) - SIMULATOR_USERS)
    # The command imports it when run, not when the CLI is loaded.
    assert all(not top for _, top in users.get("service/commands/simulator.py", []))
    # ...and the CLI loads the demo and the command only when they are run.
    lazy = {"service.commands.demo", "service.commands.simulator"}
    main_imports = _imports(SERVICE / "__main__.py")
    assert [n for n, top in main_imports if top and n in lazy] == []
    assert {n for n, top in main_imports if not top} >= lazy


def test_no_import_cycle_in_the_simulator():
    # `from simulator import x` imports the package's __init__ (x, when x is
    # a module): a cycle through __init__ is one too.
    graph = {
        _module_name(path): {
            name
            for name, _ in _imports(path)
            if (name == "simulator" or name.startswith("simulator."))
            and _is_module(name)
            and name != _module_name(path)
        }
        for path in sorted(SIMULATOR.rglob("*.py"))
    }
    cycles = []

    def walk(module: str, trail: list[str]) -> None:
        if module in trail:
            cycles.append([*trail[trail.index(module) :], module])
            return
        for target in sorted(graph.get(module, ())):
            walk(target, [*trail, module])

    for module in sorted(graph):
        walk(module, [])
    assert cycles == []


_WITHOUT_SIMULATOR = (
    "import sys; sys.modules['simulator'] = None\n"  # as in the image: not installed
)


@pytest.mark.slow
def test_without_the_simulator_the_service_imports_and_its_commands_say_so():
    modules = sorted(
        _module_name(p)
        for p in SERVICE.rglob("*.py")
        if p.relative_to(REPOSITORY).as_posix() not in SIMULATOR_USERS
    )
    script = _WITHOUT_SIMULATOR + "".join(f"import {m}\n" for m in modules)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPOSITORY, timeout=120)
    for command in (["simulator", "--port", "0"], ["demo"]):
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                _WITHOUT_SIMULATOR + "from service.__main__ import main; sys.exit(main())",
                *command,
            ],
            capture_output=True,
            text=True,
            cwd=REPOSITORY,
            timeout=120,
        )
        assert run.returncode == 2, (command, run.stderr)
        assert run.stdout == ""
        [line] = run.stderr.splitlines()
        assert "simulator is not installed" in line, line
        assert "Traceback" not in run.stderr
