"""`caption-bridge status --work`: open work by due date, as a real process,
read-only, on both backends."""

from __future__ import annotations

import json
import time

import anyio
import pytest

from service.queue.postgres import PostgresQueue
from service.queue.sqlite import SQLiteQueue
from tests.support.cli import cli, one_line_error
from tests.support.queue import LIMITS, published, work

DAY, HOUR, MINUTE = 86_400.0, 3_600.0, 60.0


def fill(queue) -> None:
    """Open work around the wall clock (the command reads it): one overdue by
    2 d 3 h, one due in 5 h 20 min, one without a due date, one done, one withdrawn."""
    now = time.time()

    async def write() -> None:
        await queue.open()
        try:
            overdue = work("a1", now - (2 * DAY + 3 * HOUR + 10 * MINUTE), ["en", "fr"])
            soon = work("a2", now + 5 * HOUR + 20 * MINUTE + 30, ["de"])
            undated = work("a3", None, [])
            done = work("a4", now - DAY, ["en"])
            withdrawn = work("a5", now - DAY, ["en"])
            await published(queue, undated, soon, overdue, done, withdrawn)
            await queue.record_delivered(overdue.folder, "fr")
            await queue.record_delivered(done.folder, "en")
            await queue.record_bundle(withdrawn.asset_id, withdrawn.folder, "withdrawn")
        finally:
            await queue.close()

    anyio.run(write)


@pytest.fixture(params=["sqlite", "postgres"])
def queue_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        fill(SQLiteQueue(tmp_path / "q.db", **LIMITS))
        return "sqlite:///q.db"
    url = request.getfixturevalue("pg_url")
    fill(PostgresQueue(url, **LIMITS))
    return url


@pytest.mark.slow
def test_open_work_by_due_date_for_people_and_machines(queue_url, tmp_path):
    env = {"QUEUE_URL": queue_url}
    result = cli("status", "--work", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "open work: 3 bundle(s), 1 overdue:"
    assert lines[1].startswith("  OVERDUE by 2 d 3 h ")
    assert lines[1].endswith("Title a1 [a1]  missing: en")
    assert lines[2].startswith("  due in 5 h 20 min ")
    assert lines[2].endswith("Title a2 [a2]  missing: de")
    assert lines[3].startswith("  no due date ")
    assert lines[3].endswith("Title a3 [a3]  missing: no language delivered yet")
    assert len(lines) == 4  # neither the delivered nor the withdrawn one

    machine = json.loads(cli("status", "--work", "--json", cwd=tmp_path, env=env).stdout)
    assert (machine["total"], machine["overdue"], machine["recorded"]) == (3, 1, True)
    first = machine["items"][0]
    assert first["asset_id"] == "a1" and first["title"] == "Title a1"
    assert first["folder"] == "Title a1 [a1]" and first["request_id"] == "req-a1"
    assert first["overdue"] is True and first["missing_languages"] == ["en"]
    assert -2 * DAY - 3 * HOUR - 11 * MINUTE < first["seconds_left"] < -2 * DAY - 3 * HOUR
    assert [i["asset_id"] for i in machine["items"]] == ["a1", "a2", "a3"]
    assert machine["items"][2]["due_date"] is None

    # A page at a time.
    paged = cli("status", "--work", "--limit", "1", "--offset", "1", cwd=tmp_path, env=env)
    lines = paged.stdout.splitlines()
    assert lines[0] == "open work: 3 bundle(s), 1 overdue (2-2 of 3, due first):"
    assert "Title a2 [a2]" in lines[1]
    assert lines[2] == "  ... 1 more: --offset 2 (or --json)"

    # The queue at a glance says how much there is.
    glance = cli("status", cwd=tmp_path, env=env).stdout
    assert "open work: 3 bundle(s), 1 overdue (`status --work` lists them by due date)" in glance


@pytest.mark.slow
def test_work_is_for_the_whole_queue_not_a_request(tmp_path):
    result = cli("status", "some-request", "--work", cwd=tmp_path)
    assert "--work lists the whole queue's open work" in one_line_error(result)


@pytest.mark.slow
def test_a_queue_made_before_due_dates_read_only_says_so(tmp_path):
    import sqlite3

    fill(SQLiteQueue(tmp_path / "q.db", **LIMITS))
    with sqlite3.connect(tmp_path / "q.db") as db:
        db.execute("DROP TABLE due_work")
    before = (tmp_path / "q.db").read_bytes()
    result = cli("status", "--work", cwd=tmp_path, env={"QUEUE_URL": "sqlite:///q.db"})
    assert result.returncode == 0, result.stderr
    assert "no open work recorded yet" in result.stdout
    assert cli("status", cwd=tmp_path, env={"QUEUE_URL": "sqlite:///q.db"}).returncode == 0
    assert (tmp_path / "q.db").read_bytes() == before  # read-only: nothing made
