"""At start-up, the service logs one line per dependency with its outcome (real processes)."""

from __future__ import annotations

import pytest

from simulator import Simulator
from tests.support.privileges import DROP_ROOT_OVERRIDES
from tests.support.servers import ServiceProcess, running, service_process
from tests.support.service import BEARER, CURRENT_SECRET, ICONIK_TOKEN
from tests.support.stack import APP_ID


def dependencies(process: ServiceProcess, names: set[str]) -> dict[str, dict]:
    seen: dict[str, dict] = {}
    while set(seen) != names:
        line = process.wait_for("startup.dependency")
        seen[line["dependency"]] = line
    return seen


def env_for(tmp_path, iconik_url: str, **extra: str) -> dict[str, str]:
    return {
        "WEBHOOK_SECRETS": CURRENT_SECRET,
        "BEARER_TOKENS": BEARER,
        "PORT": "0",
        "QUEUE_URL": f"sqlite:///{tmp_path}/queue.db",
        "STORAGE_URL": str(tmp_path / "bundles"),
        "ICONIK_URL": iconik_url,
        "ICONIK_APP_ID": APP_ID,
        "ICONIK_AUTH_TOKEN": ICONIK_TOKEN,
        "LOG_FORMAT": "json",
        **extra,
    }


@pytest.mark.slow
def test_serve_logs_each_dependency_and_a_refused_iconik_token(tmp_path):
    sim = Simulator(APP_ID, "the-token-iconik-knows")
    with (
        running(sim.app()) as sim_url,
        service_process("serve", env=env_for(tmp_path, sim_url), cwd=tmp_path) as serve,
    ):
        seen = dependencies(serve, {"queue", "storage", "iconik"})
    assert seen["queue"]["outcome"] == "ok" and seen["storage"]["outcome"] == "ok"
    assert seen["iconik"]["outcome"] == "failed" and seen["iconik"]["where"] == sim_url
    assert seen["iconik"]["reason"].startswith("credentials refused")
    assert "ICONIK_AUTH_TOKEN" in seen["iconik"]["reason"]
    assert ICONIK_TOKEN not in str(seen)


@pytest.mark.slow
def test_worker_logs_iconik_reachable_and_an_unwritable_storage(tmp_path):
    sim = Simulator(APP_ID, ICONIK_TOKEN)
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    bundles.chmod(0o555)  # binds the worker: it runs without root's overrides
    with running(sim.app()) as sim_url:
        env = env_for(tmp_path, sim_url)
        with service_process("worker", env=env, cwd=tmp_path, prefix=DROP_ROOT_OVERRIDES) as worker:
            seen = dependencies(worker, {"queue", "storage", "iconik"})
    assert seen["iconik"]["outcome"] == "ok" and seen["queue"]["outcome"] == "ok"
    assert seen["storage"]["outcome"] == "failed" and str(bundles) in seen["storage"]["where"]
    assert seen["storage"]["reason"]


@pytest.mark.slow
def test_a_storage_root_under_a_regular_file_keeps_the_worker_up(tmp_path):
    """A STORAGE_URL under a regular file was a traceback and exit 1: now it
    is the storage's failure, logged, and the worker stays up to retry."""
    (tmp_path / "file").write_text("not a folder")
    sim = Simulator(APP_ID, ICONIK_TOKEN)
    with running(sim.app()) as sim_url:
        env = env_for(tmp_path, sim_url, STORAGE_URL=str(tmp_path / "file" / "bundles"))
        with service_process("worker", env=env, cwd=tmp_path) as worker:
            seen = dependencies(worker, {"queue", "storage", "iconik"})
            logged = [s for s in worker.seen if isinstance(s, dict)]
            fill = [s for s in logged if s["event"] == "registry.not_filled"]
            line = fill[0] if fill else worker.wait_for("registry.not_filled")
            assert worker.process.poll() is None
    assert "cannot open it" in line["error"] and "ENOTDIR" in line["error"]
    assert seen["storage"]["outcome"] == "failed"
    assert not any("Traceback" in str(s) for s in worker.seen)
