"""Migration steps read from a backend's .sql file (postgres.sql, sqlite.sql).

A step starts with a line `-- version: N` and holds everything up to the
next one; each backend applies the steps after the version its store
records, in order (postgres_store.py, sqlite_migrate.py).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_STEP = re.compile(r"^-- version: (\d+)\s*$", re.MULTILINE)


@cache
def steps(filename: str) -> tuple[tuple[int, str], ...]:
    """(version, SQL) of every step in `filename` (beside this module), in order."""
    text = resources.files("service.queue").joinpath(filename).read_text()
    marks = list(_STEP.finditer(text))
    return tuple(
        (
            int(mark.group(1)),
            text[mark.end() : marks[i + 1].start() if i + 1 < len(marks) else None],
        )
        for i, mark in enumerate(marks)
    )
