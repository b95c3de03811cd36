from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from service.intake import auth
from service.settings import Settings
from tests.support.clock import FakeClock
from tests.support.queue import BACKENDS, open_backend

CURRENT_SECRET = "current-webhook-secret-7f3a"
OLD_SECRET = "previous-webhook-secret-19bc"
RETIRED_SECRET = "retired-webhook-secret-0000"
BEARER = "static-bearer-token-5d2e9"
ICONIK_TOKEN = "iconik-app-token-a81c"
PAYLOAD_AUTH_TOKEN = "payload-auth-token-c0ffee"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test, never from the machine running it."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


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


@pytest.fixture(scope="session")
def moto_endpoint():
    """S3 (and SQS) through moto's real server over HTTP on loopback."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return moto_endpoint


@pytest.fixture
def bucket(aws):
    """A new, empty bucket in moto's server."""
    import boto3

    name = f"bucket-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def pg_cluster():
    """A throw-away PostgreSQL cluster for the whole run (see tests/support/postgres.py)."""
    from tests.support.postgres import remove_cluster, start_cluster

    cluster = start_cluster()
    yield cluster
    remove_cluster(cluster)


@pytest.fixture
def pg_url(pg_cluster):
    """A fresh, empty database on the cluster: its postgresql:// URL (with a password)."""
    return pg_cluster.new_database()


@pytest.fixture
def anyio_backend():
    """Async tests (pytest.mark.anyio) run on asyncio, the service's loop."""
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    """The queue's clock, moved by the test (a module may define its own)."""
    return FakeClock()


@pytest.fixture(params=BACKENDS)
async def queue(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Any:
    """An open queue on each backend, SQLite and PostgreSQL, with LIMITS
    (a module that needs another queue defines its own `queue`)."""
    async with open_backend(request, tmp_path, clock) as opened:
        yield opened
