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
        capsys.readouterr()  # the stack's own log lines, when nothing configured logging yet
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
        assert f"asset {s.seeded.original_only}" in listing and "ALLOW_ORIGINAL_MEDIA" in listing
        assert main(["status", "no-such-request"]) == 1
