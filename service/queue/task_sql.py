"""A claimed task's end, return and lease, in SQL both backends run.

Each changes the task only while the worker still holds it (its lease
owner, still running): a worker whose lease lapsed and whose task another
worker took cannot end, put back or renew it. Parameters are :named
(PostgreSQL's are made from them by work_sql.for_pg); the functions give
them, from the task and the time the transaction reads.
"""

from __future__ import annotations

from typing import Any

from service.queue.types import Task, rank_after

# Done or failed, with its note or error.
END = (
    "UPDATE tasks SET state = :state, lease_owner = NULL, lease_until = NULL,"
    " last_error = :error, updated_at = :now"
    " WHERE task_id = :task_id AND lease_owner = :owner AND state = 'running'"
)
# Queued again after a wait, ranked in its lane; `refund` attempts given back.
REQUEUE = (
    "UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_until = NULL,"
    " attempts = attempts - :refund, not_before = :not_before, rank_at = :rank_at,"
    " last_error = :error, updated_at = :now"
    " WHERE task_id = :task_id AND lease_owner = :owner AND state = 'running'"
)
EXTEND_LEASE = (
    "UPDATE tasks SET lease_until = :lease_until, updated_at = :now"
    " WHERE task_id = :task_id AND lease_owner = :owner AND state = 'running'"
)
SET_JOB_ID = "UPDATE requests SET job_id = :job_id WHERE request_id = :request_id"
# The clicking user's token is kept only until the expand task ends (done or failed).
FORGET_USER_TOKEN = "UPDATE requests SET user_token = NULL WHERE request_id = :request_id"  # noqa: S105


def _held(task: Task, now: float) -> dict[str, Any]:
    return {"task_id": task.task_id, "owner": task.owner, "now": now}


def end(task: Task, state: str, error: str | None, now: float) -> dict[str, Any]:
    return {**_held(task, now), "state": state, "error": error}


def requeue(task: Task, error: str, wait: float, refund: int, now: float) -> dict[str, Any]:
    due = now + wait
    return {
        **_held(task, now),
        "refund": refund,
        "not_before": due,
        "rank_at": rank_after(task, due),
        "error": error,
    }


def extend_lease(task: Task, lease_seconds: float, now: float) -> dict[str, Any]:
    return {**_held(task, now), "lease_until": now + lease_seconds}
