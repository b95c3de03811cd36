"""The shape of `service/` (docs/architecture.md): a package per stage, each
saying what it holds, and modules small enough to read in one sitting."""

from __future__ import annotations

import ast
import re
import subprocess

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


# A path to a file of the repository, as comments, docstrings and docs name them.
NAMED_PATH = re.compile(
    r"(?<![\w/.-])((?:service|simulator|tests|bench|deploy|docs)/[\w./-]*\w\.(?:py|sql|md))\b"
)


def test_every_file_the_code_and_docs_name_exists():
    """A comment naming a test module (or any file) is wrong once that file moves."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPOSITORY, capture_output=True, text=True, check=True
    ).stdout.split()
    readers = [
        f for f in tracked if f.endswith((".py", ".sql", ".md", ".yaml", ".yml")) or "/" not in f
    ]
    named = {
        (path, f)
        for f in readers
        if (REPOSITORY / f).is_file()
        for path in NAMED_PATH.findall(
            (REPOSITORY / f).read_text(encoding="utf-8", errors="replace")
        )
        if "__pycache__" not in path
    }
    missing = sorted(
        f"{path} (named in {f})" for path, f in named if not (REPOSITORY / path).exists()
    )
    assert len(named) > 50  # the pattern finds the paths there are
    assert missing == []
