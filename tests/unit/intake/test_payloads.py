import json
from datetime import UTC, datetime

import pytest

from service.intake.payloads import (
    PayloadError,
    WebhookAction,
    parse_custom_action,
    parse_webhook,
    storable,
)
from tests.support.service import PAYLOAD_AUTH_TOKEN, custom_action_body, webhook_body


def test_custom_action_as_iconik_sends_it():
    action = parse_custom_action(custom_action_body())
    assert action.context == "ASSET"
    assert action.asset_ids == ["0a1b2c3d-0000-4000-8000-00000000a001"]
    assert action.saved_search_ids == []  # null in the body
    assert action.metadata_values is None
    assert action.date_created == datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)


def test_auth_token_stays_out_of_repr_and_storage():
    action = parse_custom_action(custom_action_body())
    assert PAYLOAD_AUTH_TOKEN not in repr(action)
    assert PAYLOAD_AUTH_TOKEN not in str(action)
    assert PAYLOAD_AUTH_TOKEN not in json.dumps(storable(action))
    assert action.auth_token is not None
    assert action.auth_token.get_secret_value() == PAYLOAD_AUTH_TOKEN


def test_date_with_offset_is_kept():
    action = parse_custom_action(custom_action_body(date_created="2026-11-20T10:00:00+02:00"))
    assert (
        action.date_created is not None and action.date_created.utcoffset().total_seconds() == 7200
    )


def test_metadata_values_as_iconik_sends_them():
    values = {"target_languages": {"field_values": [{"value": "fr"}, {"value": "de"}]}}
    action = parse_custom_action(custom_action_body(metadata_values=values))
    assert action.metadata_values == values


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"a string"',
        b"{}",
        b'{"context": ""}',
        b'{"context": 5}',
        b'{"context": "ASSET", "asset_ids": "not-a-list"}',
        b"\xff\xfe",
        b"[" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    ],
)
def test_not_a_custom_action(body):
    with pytest.raises(PayloadError):
        parse_custom_action(body)


def test_error_message_does_not_echo_the_auth_token():
    body = custom_action_body(asset_ids=PAYLOAD_AUTH_TOKEN, auth_token=PAYLOAD_AUTH_TOKEN)
    with pytest.raises(PayloadError) as err:
        parse_custom_action(body)
    assert PAYLOAD_AUTH_TOKEN not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"realm": "entity", "operation": "delete"}, WebhookAction.WITHDRAW),
        ({"realm": "entity", "operation": "purge"}, WebhookAction.WITHDRAW),
        ({"realm": "entity", "operation": "update"}, WebhookAction.REFRESH),
        ({"realm": "metadata", "operation": "update"}, WebhookAction.REFRESH),
        ({"realm": "proxies", "operation": "create"}, WebhookAction.REFRESH),
        ({"realm": "subtitles", "operation": "delete"}, WebhookAction.REFRESH),
        ({"realm": "acls", "operation": "update"}, None),
        ({"realm": "entity", "operation": "create"}, None),
        ({"realm": "entity", "operation": "restore"}, WebhookAction.REFRESH),
        ({"realm": "entity", "operation": "download"}, None),
        ({"event_type": "collections", "operation": "delete"}, None),
        ({"event_type": "assets", "object_id": None, "data": None}, None),
    ],
)
def test_webhook_action(overrides, expected):
    assert parse_webhook(webhook_body(**overrides)).action() == expected


def test_webhook_on_a_proxy_names_the_asset_from_its_data():
    hook = parse_webhook(
        webhook_body(
            realm="proxies",
            operation="create",
            object_id="0a1b2c3d-0000-4000-8000-0000000000b1",
            data={
                "asset_id": "0a1b2c3d-0000-4000-8000-00000000a009",
                "id": "0a1b2c3d-0000-4000-8000-0000000000b1",
            },
        )
    )
    assert hook.asset_id == "0a1b2c3d-0000-4000-8000-00000000a009"


@pytest.mark.parametrize("body", [b"{}", b'{"event_type": null}', b"[]", b"nope"])
def test_not_a_webhook(body):
    with pytest.raises(PayloadError):
        parse_webhook(body)


@pytest.mark.parametrize(
    "body",
    [
        # What Python's json module reads and pydantic's JSON parser refuses:
        # the body still parses, the slow way, to the same model.
        custom_action_body(metadata_values={"score": float("nan")}),
        custom_action_body(metadata_values={"note": "half a pair: \ud800"}),
        custom_action_body(),
    ],
)
def test_bodies_parse_alike_by_either_parser(body):
    action = parse_custom_action(body)
    assert action.context == "ASSET"
    assert action.asset_ids == ["0a1b2c3d-0000-4000-8000-00000000a001"]
    assert json.loads(storable(action))["asset_ids"] == action.asset_ids


def test_a_refused_body_is_described_the_same_whichever_parser_saw_it():
    with pytest.raises(PayloadError, match=r"not an Iconik custom action: context"):
        parse_custom_action(custom_action_body(context=""))
    with pytest.raises(PayloadError, match="body is not valid JSON"):
        parse_custom_action(b'{"context": "ASSET",')
    with pytest.raises(PayloadError, match="must be a JSON object"):
        parse_custom_action(b'["ASSET"]')
