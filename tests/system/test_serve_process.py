"""`caption-bridge serve` as a real process: durability and clean shutdown."""

import signal
import sqlite3
import threading

import httpx2
import pytest

from tests.support.servers import service_process
from tests.support.service import BEARER, CURRENT_SECRET, bearer, custom_action_body, signed


@pytest.fixture
def env(tmp_path):
    return {
        "WEBHOOK_SECRETS": CURRENT_SECRET,
        "BEARER_TOKENS": BEARER,
        "PORT": "0",
        "QUEUE_URL": f"sqlite:///{tmp_path}/queue.db",
        "STORAGE_URL": str(tmp_path / "bundles"),
        "LOG_FORMAT": "json",
    }


@pytest.mark.slow
def test_delivery_survives_sigkill_right_after_202(tmp_path, env):
    body = custom_action_body()
    with service_process("serve", "--no-worker", env=env, cwd=tmp_path) as first:
        port = first.wait_for("service.listening")["port"]
        answer = httpx2.post(
            f"http://127.0.0.1:{port}/iconik/custom-action", content=body, headers=signed(body)
        )
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(30)
    assert answer.status_code == 202
    request_id = answer.json()["request_id"]

    with service_process("serve", "--no-worker", env=env, cwd=tmp_path) as second:
        port = second.wait_for("service.listening")["port"]
        status = httpx2.get(f"http://127.0.0.1:{port}/requests/{request_id}", headers=bearer())
        # The same body again is recognised as the same delivery.
        again = httpx2.post(
            f"http://127.0.0.1:{port}/iconik/custom-action", content=body, headers=signed(body)
        )
    assert status.status_code == 200
    assert status.json()["payload"]["asset_ids"] == ["0a1b2c3d-0000-4000-8000-00000000a001"]
    assert again.json() == {"request_id": request_id, "status": "queued", "duplicate": True}


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight_then_exits_cleanly(tmp_path, env):
    body = custom_action_body()
    half = len(body) // 2
    release = threading.Event()

    def slow_body():
        yield body[:half]
        release.wait(30)
        yield body[half:]

    with service_process("serve", "--no-worker", env=env, cwd=tmp_path) as server:
        url = f"http://127.0.0.1:{server.wait_for('service.listening')['port']}"
        result = {}

        def send():
            result["answer"] = httpx2.post(
                url + "/iconik/custom-action",
                content=slow_body(),
                headers={**signed(body), "Content-Length": str(len(body))},
                timeout=30,
            )

        sender = threading.Thread(target=send)
        sender.start()
        # The delivery handler is running once the gauge says so (bounded poll, no sleep).
        for _ in range(5000):
            metrics = httpx2.get(url + "/metrics").text
            if "caption_bridge_deliveries_in_flight 1.0" in metrics:
                break
        else:
            pytest.fail("delivery never reached the handler")
        server.process.send_signal(signal.SIGTERM)
        server.wait_for("Shutting down")
        release.set()
        sender.join(30)
        exit_code = server.process.wait(30)
    assert result["answer"].status_code == 202
    assert exit_code == 0
    db = sqlite3.connect(tmp_path / "queue.db")
    assert (
        db.execute("SELECT request_id FROM requests").fetchone()[0]
        == (result["answer"].json()["request_id"])
    )


@pytest.mark.slow
def test_refuses_to_start_naming_the_variable(tmp_path):
    with service_process("serve", env={"PORT": "0"}, cwd=tmp_path) as proc:
        exit_code = proc.process.wait(30)
        assert proc.process.stderr is not None
    assert exit_code == 2
    assert any("WEBHOOK_SECRETS" in str(line) for line in _drain(proc))


def test_worker_refuses_to_start_without_iconik_credentials(tmp_path, env):
    with service_process("serve", env=env, cwd=tmp_path) as proc:
        exit_code = proc.process.wait(30)
    assert exit_code == 2
    message = " ".join(str(line) for line in _drain(proc))
    assert "ICONIK_APP_ID" in message and "ICONIK_AUTH_TOKEN" in message
    assert "--no-worker" in message


def _drain(proc):
    lines = []
    while True:
        line = proc.lines.get(timeout=10)
        if line is None:
            return lines
        lines.append(line)


@pytest.mark.slow
def test_a_worker_with_a_port_answers_probes_but_takes_no_deliveries(tmp_path, env):
    worker_env = {**env, "ICONIK_APP_ID": "app", "ICONIK_AUTH_TOKEN": "token"}
    with service_process("worker", "--port", "0", env=worker_env, cwd=tmp_path) as worker:
        port = worker.wait_for("service.listening")["port"]
        base = f"http://127.0.0.1:{port}"
        health = httpx2.get(f"{base}/healthz")
        ready = httpx2.get(f"{base}/readyz")
        body = custom_action_body()
        delivery = httpx2.post(f"{base}/iconik/custom-action", content=body, headers=signed(body))
        metrics = httpx2.get(f"{base}/metrics")
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(30) == 0
    assert (health.status_code, ready.status_code) == (200, 200)
    assert ready.json()["checks"] == ["queue", "storage"]
    assert delivery.status_code == 404 and delivery.json()["error"] == "not_found"
    assert "caption_bridge_tasks" in metrics.text


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_under_32_concurrent_senders_every_acknowledged_delivery_survives_kill_9(
    tmp_path, env, backend, request
):
    """Group commit (both backends) acknowledges only what its commit holds."""
    import concurrent.futures

    if backend == "postgres":
        env = {**env, "QUEUE_URL": request.getfixturevalue("pg_url")}

    acknowledged: dict[bytes, str] = {}
    enough = threading.Event()
    with service_process("serve", "--no-worker", env=env, cwd=tmp_path) as first:
        url = f"http://127.0.0.1:{first.wait_for('service.listening')['port']}"

        def sender(n: int) -> None:
            with httpx2.Client(base_url=url, timeout=10) as client:
                for i in range(10_000):
                    body = custom_action_body(some_future_field=f"{n}-{i}")
                    try:
                        answer = client.post(
                            "/iconik/custom-action", content=body, headers=signed(body)
                        )
                    except httpx2.TransportError:
                        return  # the server is gone: that delivery was never acknowledged
                    if answer.status_code == 202:
                        acknowledged[body] = answer.json()["request_id"]
                        if len(acknowledged) >= 400:
                            enough.set()

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            for n in range(32):
                pool.submit(sender, n)
            assert enough.wait(60), "the senders never got 400 acknowledgements"
            first.process.send_signal(signal.SIGKILL)  # while 32 deliveries are in flight
            first.process.wait(30)

    with service_process("serve", "--no-worker", env=env, cwd=tmp_path) as second:
        url = f"http://127.0.0.1:{second.wait_for('service.listening')['port']}"
        with httpx2.Client(base_url=url, headers=bearer()) as client:
            missing = [
                request_id
                for request_id in acknowledged.values()
                if client.get(f"/requests/{request_id}").status_code != 200
            ]
    assert len(acknowledged) >= 400 and missing == []


@pytest.mark.slow
def test_twenty_concurrent_copies_of_one_delivery_make_one_request(tmp_path, env):
    import concurrent.futures

    body = custom_action_body()
    with service_process("serve", "--no-worker", env=env, cwd=tmp_path) as server:
        url = f"http://127.0.0.1:{server.wait_for('service.listening')['port']}"
        with (
            httpx2.Client(base_url=url) as client,
            concurrent.futures.ThreadPoolExecutor(20) as pool,
        ):
            answers = list(
                pool.map(
                    lambda _: client.post(
                        "/iconik/custom-action", content=body, headers=signed(body)
                    ),
                    range(20),
                )
            )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["request_id"] for a in answers}) == 1
    assert sum("duplicate" not in a.json() for a in answers) == 1
    db = sqlite3.connect(tmp_path / "queue.db")
    assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1
    db.close()
