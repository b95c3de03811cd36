import json

from service.__main__ import main
from tests.conftest import custom_action_body
from tests.stack import stack


def test_status_prints_a_request_and_recent_failures(tmp_path, monkeypatch, capsys):
    with stack(tmp_path, allow_original_media=False, proxy_wait_seconds=5) as s:
        answer = s.send(
            custom_action_body(context="BULK", asset_ids=[s.seeded.normal, s.seeded.original_only])
        )
        s.drain()
        for name, value in {"QUEUE_URL": s.settings.queue_url, "BEARER_TOKENS": "t0ken"}.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()  # what the servers logged so far is not the command's output
        assert main(["status", answer["request_id"]]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["status"] == "done_with_errors"
        assert {t["asset_id"]: t["state"] for t in shown["tasks"] if t["asset_id"]} == {
            s.seeded.normal: "done",
            s.seeded.original_only: "failed",
        }
        assert main(["status"]) == 0
        listing = capsys.readouterr().out
        assert "0 task(s) waiting or running" in listing
        assert "latest failures (1 of 1 kept):" in listing
        assert f"asset {s.seeded.original_only}" in listing and "ALLOW_ORIGINAL_MEDIA" in listing
        assert main(["status", "no-such-request"]) == 1


def test_status_reads_a_postgresql_queue_and_never_shows_its_password(pg_url, monkeypatch, capsys):
    import anyio

    from service.queue.postgres import PostgresQueue
    from tests.postgres import PASSWORD
    from tests.test_queue import delivery

    async def store() -> None:
        queue = PostgresQueue(pg_url)
        await queue.open()
        await queue.enqueue(delivery("k1"), "req-pg-1")
        await queue.close()

    anyio.run(store)
    capsys.readouterr()
    for name, value in {"QUEUE_URL": pg_url, "BEARER_TOKENS": "t0ken"}.items():
        monkeypatch.setenv(name, value)
    assert main(["status", "req-pg-1"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "queued"
    assert main(["status"]) == 0
    assert main(["status", "no-such-request"]) == 1
    shown = capsys.readouterr()
    assert "1 task(s) waiting or running" in shown.out
    assert "PostgreSQL queue at 127.0.0.1" in shown.out
    assert PASSWORD not in shown.out + shown.err
