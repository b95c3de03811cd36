"""The shape of `service/` (docs/architecture.md): a package per stage, each
saying what it holds, and modules small enough to read in one sitting."""

from __future__ import annotations

import ast

from tests.support.paths import REPOSITORY

SERVICE = REPOSITORY / "service"
MAX_LINES = 500  # past ~400 a module holds two concepts; past 500 it must be split


def test_no_module_of_the_service_is_past_500_lines():
    long = {
        str(p.relative_to(SERVICE)): n
        for p in SERVICE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_package_says_what_it_holds():
    packages = [p for p in SERVICE.rglob("__init__.py") if p.parent != SERVICE]
    assert len(packages) >= 10  # the stages, not an empty glob
    silent = [
        str(p.parent.relative_to(SERVICE))
        for p in packages
        if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
    ]
    assert silent == []
