"""A due date from the click's form to project.json, README.txt, the page,
the queue's open work, a delivery, and the due-date check (tests/support/stack.py:
the simulator and the service over real HTTP, an injected clock)."""

import sqlite3

import anyio

from service.notify.due_check import DueCheck
from service.queue import DUE_SOON, OVERDUE
from service.queue.sqlite import SQLiteQueue
from tests.support.deliver import EN_VTT, take
from tests.support.outbox import Outbox
from tests.support.service import custom_action_body
from tests.support.stack import stack

HOUR = 3_600.0
FORM = {
    "target_languages": {"field_values": [{"value": "en"}, {"value": "de"}]},
    "due_date": {"field_values": [{"value": "2027-01-16"}]},  # the clock: 2027-01-15 08:00Z
}
SHOWN = (
    "16 January 2027, 23:59 UTC+01:00 (a date without a time: the end of that day in Europe/Paris)"
)


def open_work(s, check_hours_ahead: float = 0.0) -> list[dict]:
    async def read() -> list[dict]:
        queue = SQLiteQueue(s.settings.sqlite_path, clock=s.clock)
        await queue.open()
        try:
            now = s.clock.now
            return await queue.work_to_notify(now, now + check_hours_ahead * HOUR)
        finally:
            await queue.close()

    return anyio.run(read)


def look(s, outbox: Outbox) -> int:
    async def run() -> int:
        queue = SQLiteQueue(s.settings.sqlite_path, clock=s.clock)
        await queue.open()
        try:
            return await DueCheck(queue, outbox, notify_before_hours=24, clock=s.clock).look()
        finally:
            await queue.close()

    return anyio.run(run)


def test_a_due_date_from_the_form_to_the_bundle_and_the_notifications(tmp_path):
    with stack(tmp_path, due_date_zone="Europe/Paris") as s:
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset], metadata_values=FORM))
        s.drain()
        folder = s.bundle_dir(asset)
        request = s.manifest(asset)["request"]
        assert request["due_date"] == "2027-01-16T23:59:59+01:00"
        assert request["due_date_note"] == (
            "a date without a time: the end of that day in Europe/Paris"
        )
        readme = (folder / "deliver" / "README.txt").read_text()
        assert f"\nDue: {SHOWN}.\n" in readme
        page = (folder / "index.html").read_text()
        assert "Due: 16 January 2027, 23:59 UTC+01:00" in page

        # Open work: due in 39 h, both languages missing.
        [row] = open_work(s, check_hours_ahead=48)
        assert row["folder"] == folder.name and row["missing"] == ["en", "de"]
        outbox = Outbox()
        assert look(s, outbox) == 0  # more than 24 h off

        # English delivered through deliver/: only German is missing now.
        (folder / "deliver" / "en.vtt").write_text(EN_VTT)
        assert take(s) == [0, 1]
        s.drain()
        [row] = open_work(s, check_hours_ahead=48)
        assert row["missing"] == ["de"]
        # README.txt, rendered by the scan from the manifest read back, is
        # the build's: no rewrite asked for.
        assert s.scan().queued == 0

        s.clock.now += 20 * HOUR  # due in 19 h
        assert look(s, outbox) == 1
        s.clock.now += 20 * HOUR  # an hour past due
        assert look(s, outbox) == 1
        assert look(s, outbox) == 0
        assert [(e.type, e.data["missing_languages"]) for e in outbox.events] == [
            (DUE_SOON, ["de"]),
            (OVERDUE, ["de"]),
        ]
        assert outbox.events[0].data["due_date"] == "2027-01-16T23:59:59+01:00"
        assert outbox.events[0].data["folder"] == folder.name


def test_a_due_date_that_is_not_a_date_is_left_out_with_a_note(tmp_path):
    with stack(tmp_path) as s:
        asset = s.seeded.normal
        form = {"due_date": {"field_values": [{"value": "next week"}]}}
        s.send(custom_action_body(asset_ids=[asset], metadata_values=form))
        s.drain()
        request = s.manifest(asset)["request"]
        assert request["due_date"] is None
        assert "'next week' is not a date" in request["due_date_note"]
        folder = s.bundle_dir(asset)
        assert "Due:" not in (folder / "deliver" / "README.txt").read_text()
        assert "next week (the due date" in (folder / "index.html").read_text()
        # Open work without a due date: recorded, never due.
        with sqlite3.connect(s.settings.sqlite_path) as db:
            rows = db.execute("SELECT folder, due_at, missing FROM due_work").fetchall()
        assert rows == [(folder.name, None, '["*"]')]
        assert open_work(s, check_hours_ahead=10_000) == []
