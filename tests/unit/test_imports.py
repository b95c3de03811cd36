"""No import cycles in `service/` and `simulator/`, read from the source.

A cycle makes the order of imports matter and hides which module is the
lower layer; the checker (tests/support/import_graph.py) counts the imports that run
at import time, package `__init__`s included. (What the service may import
from the simulator: tests/system/test_simulator_boundary.py.)
"""

from __future__ import annotations

from pathlib import Path

from tests.support.import_graph import cycles, graph, loaded_with
from tests.support.paths import REPOSITORY

ROOT = REPOSITORY
PACKAGES = ("service", "simulator")

# The stages the work is made of, and the layers that run them: a stage
# below never imports one above (the Iconik client once imported the work's
# TaskFailed; it is service.failures now, under both).
LOWER = ("service.iconik", "service.bundle", "service.captions", "service.storage")
UPPER = (
    "service.work",
    "service.deliver",
    "service.notify",
    "service.intake",
    "service.commands",
)


def test_there_is_no_import_cycle():
    assert cycles(graph(ROOT, PACKAGES)) == []


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def upward_imports(
    edges: dict[str, set[str]], lower: tuple[str, ...], upper: tuple[str, ...]
) -> dict[str, list[str]]:
    """{module of `lower`: the chain by which importing it loads a module of `upper`}."""
    found = {}
    for module in sorted(m for m in edges if _within(m, lower)):
        loaded = loaded_with(edges, module)
        above = [chain for m, chain in loaded.items() if _within(m, upper)]
        if above:  # the shortest way up says most plainly which import to change
            found[module] = min(above, key=lambda chain: (len(chain), chain))
    return found


def test_the_lower_stages_import_nothing_of_the_layers_above():
    assert upward_imports(graph(ROOT, ("service",)), LOWER, UPPER) == {}


def test_the_direction_checker_follows_imports_and_package_inits(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low/__init__.py": "",
            "pkg/low/direct.py": "from pkg.high.tasks import Failed\n",
            "pkg/low/through.py": "import pkg.low.direct\n",
            "pkg/low/clean.py": "def later():\n    from pkg.high import tasks\n",
            "pkg/low/sub/__init__.py": "from pkg.high import tasks\n",
            "pkg/low/sub/leaf.py": "",
            "pkg/high/__init__.py": "",
            "pkg/high/tasks.py": "import pkg.low.clean\nclass Failed(Exception): ...\n",
        },
    )
    found = upward_imports(graph(tmp_path, ("pkg",)), ("pkg.low",), ("pkg.high",))
    assert found == {
        "pkg.low.direct": ["pkg.low.direct", "pkg.high.tasks"],
        "pkg.low.through": ["pkg.low.through", "pkg.low.direct", "pkg.high.tasks"],
        "pkg.low.sub": ["pkg.low.sub", "pkg.high.tasks"],
        "pkg.low.sub.leaf": ["pkg.low.sub.leaf", "pkg.low.sub", "pkg.high.tasks"],
    }


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_finds_a_cycle_through_a_package_init(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.low import thing\nname = 2\n",
            "pkg/low.py": "from pkg import name\nthing = 1\n",
            "pkg/high.py": "from . import low\n",
            "pkg/apart.py": "import pkg.high\n",
        },
    )
    assert cycles(graph(tmp_path, ("pkg",))) == [["pkg", "pkg.low"]]


def test_imports_that_do_not_run_at_import_time_make_no_cycle(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg import a\n"
                "def later():\n    from pkg import a\n"
            ),
        },
    )
    assert cycles(graph(tmp_path, ("pkg",))) == []


def test_an_import_in_a_class_body_or_a_try_counts(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "class A:\n    from pkg import b\n",
            "pkg/b.py": "try:\n    from pkg.a import A\nexcept ImportError:\n    A = None\n",
        },
    )
    assert cycles(graph(tmp_path, ("pkg",))) == [["pkg.a", "pkg.b"]]
