import asyncio
import json
import logging

import pytest
import structlog

from service import logging as service_logging
from service.logging import REDACTED, Redactor


def test_values_under_credential_keys_are_masked():
    event = Redactor()(
        None,
        "info",
        {
            "event": "x",
            "auth_token": "abc",
            "Authorization": "Bearer abc",
            "x-iconik-signature": "ff00",
            "webhook_secrets": ["a", "b"],
            "asset_id": "keep-me",
        },
    )
    assert event == {
        "event": "x",
        "auth_token": REDACTED,
        "Authorization": REDACTED,
        "x-iconik-signature": REDACTED,
        "webhook_secrets": REDACTED,
        "asset_id": "keep-me",
    }


def test_configured_secrets_are_masked_anywhere_in_a_value():
    redact = Redactor(["s3cret-value"])
    event = redact(
        None,
        "info",
        {
            "event": "failed with s3cret-value inside",
            "nested": {"list": ["x s3cret-value y"], "raw": b"s3cret-value"},
        },
    )
    assert "s3cret-value" not in json.dumps(event)
    assert event["event"] == f"failed with {REDACTED} inside"


def test_stdlib_and_structlog_lines_are_json_and_redacted(capsys):
    service_logging.configure("json", secrets=["token-in-config"])
    try:
        structlog.get_logger("t").info("hello token-in-config", auth_token="zzz", asset_id="a1")
        logging.getLogger("uvicorn.error").warning("leaked token-in-config by a library")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert lines[0]["event"] == f"hello {REDACTED}"
    assert lines[0]["auth_token"] == REDACTED and lines[0]["asset_id"] == "a1"
    assert lines[1]["event"] == f"leaked {REDACTED} by a library"
    assert lines[1]["logger"] == "uvicorn.error"


@pytest.fixture
def json_log():
    """The service's logging, JSON to stderr; reset afterwards."""
    service_logging.configure("json")
    yield structlog.get_logger("t")
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def test_lines_logged_on_a_loop_go_out_together_at_the_end_of_its_turn(json_log, capsys):
    async def burst():
        for n in range(3):
            json_log.info("line", n=n)
        held = capsys.readouterr().err  # still this turn of the loop
        await asyncio.sleep(0)
        return held, capsys.readouterr().err

    held, written = asyncio.run(burst())
    json_log.info("outside a loop")
    outside = capsys.readouterr().err
    assert held == ""
    assert [json.loads(x)["n"] for x in written.splitlines()] == [0, 1, 2]
    assert json.loads(outside)["event"] == "outside a loop"


def test_a_long_turn_writes_its_lines_part_way(json_log, capsys):
    async def flood():
        for n in range(1000):
            json_log.info("line", n=n)
        return capsys.readouterr().err

    assert len(asyncio.run(flood()).splitlines()) >= 1000 - 256
