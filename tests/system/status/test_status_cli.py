"""`caption-bridge status`: read-only, for people and for machines.

Where the command is the product (its exit code, its stderr, the files it
leaves or does not), it runs as a real process: `python -m service status`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys

import anyio
import pytest

from service.__main__ import main
from service.queue import NewTask
from service.queue.sqlite import SQLiteQueue
from tests.support.cli import cli, one_line_error
from tests.support.queue import delivery
from tests.support.service import ICONIK_TOKEN, custom_action_body
from tests.support.stack import stack


@pytest.mark.slow
def test_status_in_an_empty_directory_says_so_and_creates_nothing(tmp_path):
    # No settings at all: no BEARER_TOKENS, no QUEUE_URL (the default ./data/queue.db).
    result = cli("status", cwd=tmp_path)
    line = one_line_error(result)
    assert "no queue at data/queue.db" in line and "QUEUE_URL" in line
    assert list(tmp_path.iterdir()) == []  # no ./data, no queue.db
    result = cli("status", "some-request", cwd=tmp_path)
    assert "no queue at" in one_line_error(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_status_refuses_a_file_that_is_not_a_queue(tmp_path):
    (tmp_path / "other.db").write_bytes(b"not a database at all" * 100)
    result = cli("status", cwd=tmp_path, env={"QUEUE_URL": "sqlite:///other.db"})
    assert "is not a caption bridge queue" in one_line_error(result)
    assert (tmp_path / "other.db").read_bytes() == b"not a database at all" * 100


@pytest.mark.slow
def test_status_with_the_database_down_is_one_line_without_the_password(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://bridge:pa55-w0rd-x@127.0.0.1:{port}/captions"
    result = cli("status", cwd=tmp_path, env={"QUEUE_URL": url})
    line = one_line_error(result)
    assert line.startswith(f"caption-bridge status: PostgreSQL queue at 127.0.0.1:{port}/captions")
    assert "pa55-w0rd-x" not in result.stderr + result.stdout


@pytest.mark.slow
def test_status_never_writes_to_a_postgresql_database(pg_url, tmp_path):
    import psycopg

    result = cli("status", cwd=tmp_path, env={"QUEUE_URL": pg_url})
    assert "holds no caption bridge queue" in one_line_error(result)
    with psycopg.connect(pg_url) as db:
        tables = db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)  # nothing was created


def task_request(pg_url: str) -> str:
    """The request whose task was tried (and put back with an error)."""
    import psycopg

    with psycopg.connect(pg_url) as db:
        row = db.execute("SELECT request_id FROM tasks WHERE attempts > 0").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.slow
def test_status_reads_a_postgresql_queue_read_only_and_never_shows_its_password(pg_url, tmp_path):
    from service.queue.postgres import PostgresQueue
    from tests.support.postgres import PASSWORD

    unreachable = "GET /API/x/: HTTP 503 after 5 attempts; check Iconik's status and ICONIK_URL"

    async def store() -> None:
        queue = PostgresQueue(pg_url)
        await queue.open()
        await queue.enqueue(delivery("k1"), "req-pg-1")
        await queue.enqueue(delivery("k2"), "req-pg-2")
        task = await queue.claim("w1")
        assert task is not None
        await queue.retry(task, unreachable, delay=60)
        await queue.close()

    anyio.run(store)
    env = {"QUEUE_URL": pg_url}
    shown = json.loads(cli("status", task_request(pg_url), "--json", cwd=tmp_path, env=env).stdout)
    assert shown["status"] == "queued" and shown["tasks"]["total"] == 1
    assert [(g["cause"], g["tasks"]) for g in shown["retrying"]] == [("Iconik unreachable", 1)]
    listing = cli("status", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    assert "2 task(s) waiting or running" in listing.stdout
    assert "  Iconik unreachable: 1 task(s)" in listing.stdout
    assert "PostgreSQL queue at 127.0.0.1" in listing.stdout
    missing = cli("status", "no-such-request", cwd=tmp_path, env=env)
    assert missing.returncode == 1 and "no request no-such-request" in missing.stderr
    assert PASSWORD not in listing.stdout + listing.stderr + missing.stderr


@pytest.mark.slow
def test_status_of_a_request_for_people_and_for_machines(tmp_path, monkeypatch, capsys):
    with stack(tmp_path, allow_original_media=False, proxy_wait_seconds=5) as s:
        answer = s.send(
            custom_action_body(context="BULK", asset_ids=[s.seeded.normal, s.seeded.original_only])
        )
        s.drain()
        monkeypatch.setenv("QUEUE_URL", s.settings.queue_url)  # and no BEARER_TOKENS
        capsys.readouterr()  # what the servers logged so far is not the command's output
        assert main(["status", answer["request_id"]]) == 0
        text = capsys.readouterr().out
        assert f"request {answer['request_id']}: custom action (BULK), received 2027-" in text
        assert "status: done_with_errors: 2 of 2 asset task(s) finished (100%)" in text
        assert "failures (1):" in text and f"asset {s.seeded.original_only}" in text
        assert "ALLOW_ORIGINAL_MEDIA" in text

        assert main(["status", answer["request_id"], "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["status"] == "done_with_errors"
        assert shown["assets"]["by_state"] == {"done": 1, "failed": 1, "running": 0, "queued": 0}
        assert shown["received_at"].endswith("Z")  # ISO, not epoch floats
        assert {t["asset_id"]: t["state"] for t in shown["tasks"]["items"] if t["asset_id"]} == {
            s.seeded.normal: "done",
            s.seeded.original_only: "failed",
        }
        assert main(["status"]) == 0
        listing = capsys.readouterr().out
        assert "0 task(s) waiting or running" in listing
        assert "recent failures (1):" in listing
        assert f"asset {s.seeded.original_only}" in listing and "ALLOW_ORIGINAL_MEDIA" in listing
        assert main(["status", "no-such-request"]) == 1


def test_status_shows_tasks_retrying_by_cause_with_the_last_reason(tmp_path, monkeypatch, capsys):
    with stack(tmp_path) as s:
        unreachable, refused = s.seeded.normal, s.seeded.large
        answer = s.send(custom_action_body(context="BULK", asset_ids=[unreachable, refused]))
        assert s.run_once()  # the expand task: one build task per asset
        # Iconik fails every try of one asset's build, and refuses the token for the other.
        # (On the subtitle listing: the one read of a click's build made per asset.)
        s.sim.fail_next(f"/API/files/v1/assets/{unreachable}/subtitles/", *[503] * 10)
        s.sim.fail_next(f"/API/files/v1/assets/{refused}/subtitles/", 401)
        assert s.run_once() and s.run_once()
        monkeypatch.setenv("QUEUE_URL", s.settings.queue_url)
        capsys.readouterr()
        assert main(["status"]) == 0
        text = capsys.readouterr().out
        assert "retrying (2 task(s)), by cause:" in text
        assert "  Iconik unreachable: 1 task(s)" in text and f"asset {unreachable}" in text
        assert "  Iconik refused the credentials: 1 task(s)" in text and "answered 401" in text
        assert "no failed tasks" in text
        assert ICONIK_TOKEN not in text

        assert main(["status", answer["request_id"], "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        causes = {g["cause"]: g for g in shown["retrying"]}
        assert set(causes) == {"Iconik unreachable", "Iconik refused the credentials"}
        assert causes["Iconik refused the credentials"]["last_asset_id"] == refused
        assert causes["Iconik unreachable"]["last_at"].endswith("Z")


@pytest.fixture
def big_queue(tmp_path) -> str:
    """A request of 1,000 assets: 998 failed, 2 done (stored through the real queue)."""
    path = tmp_path / "queue.db"

    async def fill() -> None:
        queue = SQLiteQueue(path)
        await queue.open()
        await queue.enqueue(delivery("big"), "req-big")
        task = await queue.claim("w1")
        assert task is not None
        children = [NewTask("build", f"asset-{i:04d}") for i in range(1000)]
        await queue.complete(task, children)
        await queue.close()

    anyio.run(fill)
    with sqlite3.connect(path) as db:  # the outcomes, in one statement
        db.execute(
            "UPDATE tasks SET state = 'failed', attempts = 8,"
            " last_error = 'asset ' || asset_id || ': not found in Iconik',"
            " updated_at = updated_at + CAST(substr(asset_id, 7) AS INTEGER)"
            " WHERE asset_id IS NOT NULL AND asset_id NOT IN ('asset-0000', 'asset-0001')"
        )
        db.execute("UPDATE tasks SET state = 'done' WHERE state <> 'failed'")
    return f"sqlite:///{path}"


def test_status_of_a_thousand_assets_is_counted_and_paged(big_queue, monkeypatch, capsys):
    monkeypatch.setenv("QUEUE_URL", big_queue)
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "0 task(s) waiting or running (0 queued, 0 running); 998 failed" in text
    assert "recent failures (1-20 of 998, newest first):" in text
    assert "asset asset-0999" in text  # the newest first
    assert "... 978 more failures: --offset 20" in text

    assert main(["status", "req-big"]) == 0
    text = capsys.readouterr().out
    assert "status: done_with_errors: 1,000 of 1,000 asset task(s) finished (100%)" in text
    assert "998 failed" in text and "failures (1-20 of 998, first):" in text
    assert len(text.splitlines()) < 30  # not one line per asset

    assert main(["status", "req-big", "--json", "--limit", "50", "--offset", "990"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert page["failures"]["total"] == 998 and len(page["failures"]["items"]) == 8
    assert page["tasks"]["total"] == 1001 and len(page["tasks"]["items"]) == 11
    assert page["assets"]["by_state"]["failed"] == 998
    assert len(json.dumps(page)) < 20_000


@pytest.mark.slow
def test_status_piped_into_head_ends_quietly(big_queue, tmp_path):
    # Enough output to fill the pipe: the reader leaves after one line.
    args = [sys.executable, "-m", "service", "status", "--limit", "1000"]
    env = {**os.environ, "QUEUE_URL": big_queue}
    with subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith(b"SQLite queue ")
        process.stdout.close()
        errors = process.stderr.read().decode()
        assert process.wait(timeout=30) == 0, errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors


def test_a_task_whose_worker_stopped_counts_as_retrying(tmp_path):
    from service.status.reader import open_reader
    from service.status.report import queue_report

    path = tmp_path / "queue.db"

    async def claim_and_vanish() -> None:
        queue = SQLiteQueue(path, lease_seconds=60, clock=lambda: 1_000.0)
        await queue.open()
        await queue.enqueue(delivery("k1"), "req-1")
        assert await queue.claim("worker-that-dies") is not None
        await queue.close()

    anyio.run(claim_and_vanish)
    with open_reader(f"sqlite:///{path}", clock=lambda: 1_000.0 + 61) as reader:
        report = queue_report(reader, limit=5, offset=0)
    assert report["tasks"] == {"queued": 1, "running": 0, "failed": 0}
    [lost] = report["retrying"]
    assert lost["cause"] == "worker stopped" and lost["tasks"] == 1
    assert "stopped renewing the lease" in lost["last_error"]
