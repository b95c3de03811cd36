"""Why a task waits to run again: one list of causes, read three ways.

`caption-bridge status` (service.status.reader) and `/metrics`
(`caption_bridge_tasks_retrying`, read through the queue) group the tasks
waiting to run again after an error by the words of their last error (the
messages of service.iconik.transport, service.work.runner and service.work.gather); the worker
counts each retry by the same causes (`caption_bridge_task_retries_total`).

A cause has a `label` (the metrics' label value) and a `name` (what
`status` shows). Its patterns are SQL LIKE patterns (`%` any text, `_` any
one character), tried in order, case-insensitive: in the database by
`cause_case`, in Python by `cause_of`, with the same meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal


@dataclass(frozen=True)
class Cause:
    label: str  # the value of the metrics' `cause` label
    name: str  # what `caption-bridge status` shows
    patterns: tuple[str, ...]  # SQL LIKE patterns of the task's last error


RETRY_CAUSES: tuple[Cause, ...] = (
    Cause(
        "credentials_refused",
        "Iconik refused the credentials",
        ("%check ICONIK_APP_ID and ICONIK_AUTH_TOKEN%",),
    ),
    Cause("iconik_unreachable", "Iconik unreachable", ("%check Iconik's status and ICONIK_URL%",)),
    Cause("storage", "bundle storage", ("the bundle storage:%",)),
    Cause(
        "media_download",
        "media download (signed storage URL)",
        ("%signed storage URL%", "%the storage service may be down%", "download of %"),
    ),
    Cause("proxy_wait", "waiting for a proxy", ("%waiting for Iconik to finish the proxy%",)),
    Cause("worker_stopped", "worker stopped", ("worker stopped%", "%stopped renewing the lease%")),
)
# A running task whose worker stopped renewing its lease waits too: as this cause.
LOST = RETRY_CAUSES[-1]
OTHER = Cause("other", "other", ())
ALL_CAUSES = (*RETRY_CAUSES, OTHER)

# A task shown as retrying: waiting (or running) after an error, or running
# under a lease that lapsed (its worker stopped).
LAPSED = "state = 'running' AND lease_until < :now"
RETRYING = f"state IN ('queued', 'running') AND (last_error IS NOT NULL OR ({LAPSED}))"

Label = Literal["label", "name"]


def cause_case(by: Label = "name") -> tuple[str, dict[str, str]]:
    """A SQL CASE giving each task row its cause (`:now` is the queue's
    clock, bound by the caller), and the parameters it binds."""
    params = {"lost": getattr(LOST, by), "other": getattr(OTHER, by)}
    branches = [f"WHEN {LAPSED} THEN :lost"]
    for i, cause in enumerate(RETRY_CAUSES):
        tests = []
        for j, pattern in enumerate(cause.patterns):
            params[f"p{i}_{j}"] = pattern.lower()
            tests.append(f"lower(last_error) LIKE :p{i}_{j}")
        params[f"c{i}"] = getattr(cause, by)
        branches.append(f"WHEN {' OR '.join(tests)} THEN :c{i}")
    return f"CASE {' '.join(branches)} ELSE :other END", params


def counts_query() -> tuple[str, dict[str, str]]:
    """One grouped query: (cause label, n) of every task retrying now."""
    case, params = cause_case("label")
    sql = f"SELECT {case} AS cause, count(*) AS n FROM tasks WHERE {RETRYING} GROUP BY 1"  # noqa: S608
    return sql, params


_NAMED = re.compile(r"(?<!:):(\w+)")


def pyformat(sql: str) -> str:
    """`:name` parameters as psycopg's `%(name)s`."""
    return _NAMED.sub(r"%(\1)s", sql)


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    parts = ("." if c == "_" else ".*" if c == "%" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def cause_of(error: str | None) -> Cause:
    """The cause of one error, as the database would group it."""
    for cause in RETRY_CAUSES:
        if error is not None and any(_regex(p).fullmatch(error) for p in cause.patterns):
            return cause
    return OTHER
