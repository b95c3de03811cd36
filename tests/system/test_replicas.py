"""Several `serve` replicas on one PostgreSQL queue with S3 bundles, as real processes.

PostgreSQL is a throw-away cluster (tests/support/postgres.py), S3 is moto's server
over HTTP, Iconik is the simulator over HTTP. Replicas are killed with
SIGKILL; the database is stopped and started under a running replica.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import signal
import time
from contextlib import ExitStack

import boto3
import httpx2
import psycopg
import pytest

from service.intake.app import create_app
from simulator import Simulator
from tests.support.polling import until
from tests.support.postgres import PASSWORD
from tests.support.servers import running, service_env, service_process
from tests.support.service import (
    PAYLOAD_AUTH_TOKEN,
    bearer,
    custom_action_body,
    make_settings,
    signed,
)
from tests.support.stack import APP_ID, ICONIK_TOKEN

ASSETS = 30


def _until(condition, timeout: float, what: str):
    """Poll `condition()` (a call to a service or the database) until it returns a truthy value."""
    return until(condition, within=timeout, every=0.1, why=what)


def _status(url: str, request_id: str) -> dict:
    return httpx2.get(f"{url}/requests/{request_id}", headers=bearer()).json()


def _bundles_in_s3(bucket: str, prefix: str) -> dict[str, dict]:
    s3 = boto3.client("s3")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/", Delimiter="/")
    found = {}
    for common in listing.get("CommonPrefixes", []):
        folder = common["Prefix"][len(prefix) + 1 : -1]
        raw = s3.get_object(Bucket=bucket, Key=f"{prefix}/{folder}/project.json")["Body"].read()
        found[folder] = json.loads(raw)
    return found


@pytest.mark.slow
def test_three_replicas_one_killed_mid_bulk_every_asset_one_complete_bundle(
    tmp_path, pg_url, bucket, aws
):
    sim = Simulator(APP_ID, ICONIK_TOKEN)
    sim.add_user(PAYLOAD_AUTH_TOKEN)  # whose auth_token the clicks carry
    assets = sim.add_tiny_assets(ASSETS, proxy_bytes=256 * 1024)
    held = sim.assets[assets[0]].proxies[0]["id"]
    gate = sim.hold_download(f"proxies/{held}", after_bytes=64 * 1024)
    body = custom_action_body(context="BULK", asset_ids=assets)
    with running(sim.app()) as sim_url, ExitStack() as stack:
        settings = make_settings(tmp_path, iconik_url=sim_url, queue_url=pg_url)
        env = service_env(
            settings,
            f"s3://{bucket}/captioning",
            PORT="0",
            WORKER_CONCURRENCY="2",
            TASK_LEASE_SECONDS="5",
            AWS_ENDPOINT_URL=aws,
        )
        replicas = [
            stack.enter_context(service_process("serve", env=env, cwd=tmp_path)) for _ in range(3)
        ]
        # The worker starts with the app, before the port is announced.
        owners = {r.wait_for("worker.started")["owner"]: r for r in replicas}
        urls = [f"http://127.0.0.1:{r.wait_for('service.listening')['port']}" for r in replicas]

        # The same click reaches all three at once: one request.
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            answers = list(
                pool.map(
                    lambda url: httpx2.post(
                        f"{url}/iconik/custom-action", content=body, headers=signed(body)
                    ),
                    urls,
                )
            )
        assert [a.status_code for a in answers] == [202, 202, 202]
        request_ids = {a.json()["request_id"] for a in answers}
        assert len(request_ids) == 1
        assert sum("duplicate" not in a.json() for a in answers) == 1
        [request_id] = request_ids

        # Kill the replica that is half-way through the held download.
        try:
            assert gate.reached.wait(60), "no replica started the held download"
            with psycopg.connect(pg_url) as db:
                [(owner,)] = db.execute(
                    "SELECT lease_owner FROM tasks WHERE asset_id = %s AND state = 'running'",
                    (assets[0],),
                ).fetchall()
            victim = owners[owner]
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait(30)
        finally:
            gate.release.set()
        survivors = [url for url, r in zip(urls, replicas, strict=True) if r is not victim]

        final = _until(
            lambda: (s := _status(survivors[0], request_id))["status"] == "done" and s,
            90,
            "the request never finished on the surviving replicas",
        )
        assert final == _status(survivors[1], request_id)  # any replica, same answer

    bundles = _bundles_in_s3(bucket, "captioning")
    assert sorted(folder.rsplit("[", 1)[1].rstrip("]") for folder in bundles) == sorted(assets)
    s3 = boto3.client("s3")
    for folder, manifest in bundles.items():
        assert manifest["status"] == "ready"
        for entry in manifest["files"]:
            key = f"captioning/{folder}/{entry['path']}"
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], key
    killed_task = next(t for t in final["tasks"] if t["asset_id"] == assets[0])
    assert killed_task["attempts"] >= 2  # it ran again elsewhere after the lease lapsed


@pytest.mark.slow
def test_a_stopped_database_means_503_then_202_again_without_a_restart(
    tmp_path, pg_cluster, pg_url
):
    settings = make_settings(tmp_path, queue_url=pg_url)
    env = service_env(settings, tmp_path / "bundles", PORT="0")
    with service_process("serve", "--no-worker", env=env, cwd=tmp_path) as replica:
        url = f"http://127.0.0.1:{replica.wait_for('service.listening')['port']}"

        def deliver(n: int) -> httpx2.Response:
            body = custom_action_body(some_future_field=n)
            return httpx2.post(
                f"{url}/iconik/custom-action", content=body, headers=signed(body), timeout=10
            )

        assert deliver(0).status_code == 202
        pg_cluster.stop()
        try:
            started = time.monotonic()
            during = deliver(1)
            answered_in = time.monotonic() - started
            ready = httpx2.get(f"{url}/readyz", timeout=10)
        finally:
            pg_cluster.start()
        assert during.status_code == 503
        assert during.json()["error"] == "store_unavailable"
        assert answered_in < 5  # well inside Iconik's ~10 s
        assert ready.status_code == 503 and "queue" in ready.json()["failed"]
        logged = [*replica.seen]
        while not replica.lines.empty():  # every line the replica wrote so far
            logged.append(replica.lines.get_nowait())
        assert any("delivery.not_stored" in json.dumps(line) for line in logged)
        shown = during.text + ready.text + json.dumps(logged, default=str)
        assert PASSWORD not in shown

        again = _until(
            lambda: (r := deliver(1)).status_code == 202 and r,
            15,
            "deliveries were not stored again within 15 s",
        )
        assert again.json()["status"] == "queued"
        assert httpx2.get(f"{url}/readyz").status_code == 200


@pytest.mark.slow
def test_three_replicas_share_one_iconik_rate_budget(tmp_path, pg_url):
    from service.iconik.ratelimit import default_burst

    rate = 20
    # Iconik's window as the simulator enforces it, with the small margin a
    # real deployment keeps (45 against Iconik's 50) for calls that arrive
    # a little later than they were granted: three replicas each drawing
    # their own 20/s would blow through it.
    sim = Simulator(APP_ID, ICONIK_TOKEN, limits=((rate + default_burst(rate) + 2, 1.0),))
    sim.add_user(PAYLOAD_AUTH_TOKEN)  # whose auth_token the clicks carry
    # A click's builds read in batches (service/work/bulk_reads.py): ~1 call per asset.
    assets = sim.add_tiny_assets(96)
    with running(sim.app()) as sim_url, ExitStack() as stack:
        settings = make_settings(tmp_path, iconik_url=sim_url, queue_url=pg_url)
        env = service_env(
            settings, tmp_path / "bundles", WORKER_CONCURRENCY="4", ICONIK_RATE_LIMIT=str(rate)
        )
        workers = [
            stack.enter_context(service_process("worker", env=env, cwd=tmp_path)) for _ in range(3)
        ]
        for worker in workers:
            worker.wait_for("worker.started")
        with running(create_app(settings)) as receiver:
            body = custom_action_body(context="BULK", asset_ids=assets)
            answer = httpx2.post(
                f"{receiver}/iconik/custom-action", content=body, headers=signed(body)
            )
            request_id = answer.json()["request_id"]
            final = _until(
                lambda: (s := _status(receiver, request_id))["status"] == "done" and s,
                90,
                "the bulk did not finish",
            )
    assert final["status"] == "done"
    assert len(sim.requests) > 3 * (rate + default_burst(rate))  # enough calls to tell
    assert sim.throttled == 0
