"""The service as the tests configure and call it: its settings, the
secrets they hold, and the bodies Iconik sends with their credentials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.intake import auth
from service.settings import Settings

CURRENT_SECRET = "current-webhook-secret-7f3a"
OLD_SECRET = "previous-webhook-secret-19bc"
RETIRED_SECRET = "retired-webhook-secret-0000"
BEARER = "static-bearer-token-5d2e9"
ICONIK_TOKEN = "iconik-app-token-a81c"
PAYLOAD_AUTH_TOKEN = "payload-auth-token-c0ffee"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_secrets": f"{CURRENT_SECRET},{OLD_SECRET}",
        "bearer_tokens": BEARER,
        "iconik_app_id": "test-app",
        "iconik_auth_token": ICONIK_TOKEN,
        "queue_url": f"sqlite:///{tmp_path}/queue.db",
        "storage_url": str(tmp_path / "bundles"),
        "log_format": "json",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def custom_action_body(**overrides: Any) -> bytes:
    payload: dict[str, Any] = {
        "user_id": "0a1b2c3d-0000-4000-8000-000000000001",
        "system_domain_id": "0a1b2c3d-0000-4000-8000-0000000000aa",
        "context": "ASSET",
        "action_id": "0a1b2c3d-0000-4000-8000-0000000000ac",
        "asset_ids": ["0a1b2c3d-0000-4000-8000-00000000a001"],
        "collection_ids": [],
        "saved_search_ids": None,
        "metadata_view_id": None,
        "metadata_values": None,
        "date_created": "2026-11-20T10:00:00.123456",
        "auth_token": PAYLOAD_AUTH_TOKEN,
        "some_future_field": {"ignored": True},
    }
    payload.update(overrides)
    return json.dumps(payload, separators=(",", ":")).encode()


def webhook_body(**overrides: Any) -> bytes:
    payload: dict[str, Any] = {
        "system_domain_id": "0a1b2c3d-0000-4000-8000-0000000000aa",
        "event_type": "assets",
        "object_id": "0a1b2c3d-0000-4000-8000-00000000a001",
        "user_id": "0a1b2c3d-0000-4000-8000-000000000001",
        "realm": "entity",
        "operation": "delete",
        "data": {"id": "0a1b2c3d-0000-4000-8000-00000000a001"},
        "request_id": "iconik-request-1",
    }
    payload.update(overrides)
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(body: bytes, secret: str = CURRENT_SECRET) -> dict[str, str]:
    return {
        "X-Iconik-Signature": auth.sign(secret.encode(), body),
        "Content-Type": "application/json",
    }


def bearer(token: str = BEARER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
