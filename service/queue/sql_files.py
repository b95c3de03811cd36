"""The queue's SQL files, read by the backends beside them.

Migration steps (postgres.sql, sqlite.sql): a step starts with a line
`-- version: N` and holds everything up to the next one; each backend
applies the steps after the version its store records, in order
(postgres_store.py, sqlite_migrate.py). Named statements
(sqlite_queries.sql): each starts with a line `-- name: NAME` and holds
everything up to the next one, its comments left out.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_STEP = re.compile(r"^-- version: (\d+)\s*$", re.MULTILINE)
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _sections(filename: str, mark: re.Pattern[str]) -> list[tuple[str, str]]:
    text = resources.files("service.queue").joinpath(filename).read_text()
    marks = list(mark.finditer(text))
    return [
        (m.group(1), text[m.end() : marks[i + 1].start() if i + 1 < len(marks) else None])
        for i, m in enumerate(marks)
    ]


@cache
def steps(filename: str) -> tuple[tuple[int, str], ...]:
    """(version, SQL) of every step in `filename`, in order."""
    return tuple((int(version), sql) for version, sql in _sections(filename, _STEP))


@cache
def named(filename: str) -> dict[str, str]:
    """Every statement in `filename` by its name, without its comment lines."""
    found: dict[str, str] = {}
    for name, text in _sections(filename, _NAME):
        assert name not in found, f"{filename}: {name} twice"
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
        found[name] = "\n".join(lines).strip()
    return found
