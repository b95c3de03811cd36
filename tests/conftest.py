from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from service.settings import Settings
from tests.support.clock import FakeClock
from tests.support.queue import BACKENDS, open_backend
from tests.support.service import make_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test, never from the machine running it."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


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
