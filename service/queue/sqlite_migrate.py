"""The SQLite queue's schema, brought to the latest step of sqlite.sql.

A file records the last step it has in `PRAGMA user_version`. Files made
before the steps were versioned say 0 whatever they hold (any earlier
version of the code made them), so each step is written to meet a file that
has it already (sqlite.sql says how). A file opened read-only keeps the
steps it has: it opens (and is reported unready), and is brought up to date
on its next writable open.
"""

from __future__ import annotations

import re
import sqlite3

from service.queue.sql_files import steps

_UNLESS_COLUMN = re.compile(r"^-- unless column: (\w+)\.(\w+)\s*$", re.MULTILINE)


def latest() -> int:
    return steps("sqlite.sql")[-1][0]


def statements(script: str) -> list[str]:
    """A step's statements, one by one (a trigger's body included): run in
    the caller's transaction, which `executescript` would commit first."""
    found, pending = [], ""
    for line in script.splitlines(keepends=True):
        if not pending and (not line.strip() or line.lstrip().startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    assert not pending.strip(), f"an unfinished statement in sqlite.sql: {pending!r}"
    return found


def _has_column(db: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})"))


def apply(db: sqlite3.Connection, after: int, upto: int | None = None) -> None:
    """Run the steps after version `after` (up to `upto`) in the current
    transaction, skipping a step whose column the file has already."""
    for version, script in steps("sqlite.sql"):
        if version <= after or (upto is not None and version > upto):
            continue
        guard = _UNLESS_COLUMN.search(script)
        if guard and _has_column(db, guard.group(1), guard.group(2)):
            continue
        for statement in statements(script):
            db.execute(statement)


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> None:
    """Bring the file to the latest step: once, under the write lock."""
    if user_version(db) >= latest():
        return
    try:
        db.execute("BEGIN IMMEDIATE")
        apply(db, after=user_version(db))  # read again under the lock: another
        db.execute(f"PRAGMA user_version = {latest()}")  # process may have done it
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_READONLY:
            raise
