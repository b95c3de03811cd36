"""No import cycles in `service/` and `simulator/`, read from the source.

A cycle makes the order of imports matter and hides which module is the
lower layer; the checker (tests/import_graph.py) counts the imports that run
at import time, package `__init__`s included. (What the service may import
from the simulator: tests/test_simulator_boundary.py.)
"""

from __future__ import annotations

from pathlib import Path

from tests.import_graph import cycles, graph

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "simulator")


def test_there_is_no_import_cycle():
    assert cycles(graph(ROOT, PACKAGES)) == []


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
