"""`caption-bridge health`, the image's one HEALTHCHECK, for every command the image runs.

Each command runs as a real process with the settings the image sets
(WORKER_HTTP=true), and `caption-bridge health` runs as a real process
beside it, as Docker would run it inside the container.
"""

from __future__ import annotations

import socket

import pytest

from tests.support.cli import cli
from tests.support.servers import service_process
from tests.support.service import BEARER, CURRENT_SECRET, ICONIK_TOKEN
from tests.support.stack import APP_ID


def _nowhere() -> str:
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}"


def _image_env(tmp_path) -> dict[str, str]:
    return {
        "WEBHOOK_SECRETS": CURRENT_SECRET,
        "BEARER_TOKENS": BEARER,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "WORKER_HTTP": "true",  # as the Dockerfile sets it
        "QUEUE_URL": f"sqlite:///{tmp_path}/queue.db",
        "STORAGE_URL": str(tmp_path / "bundles"),
        "ICONIK_URL": _nowhere(),  # health is about this process, not Iconik
        "ICONIK_APP_ID": APP_ID,
        "ICONIK_AUTH_TOKEN": ICONIK_TOKEN,
        "LOG_FORMAT": "json",
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", [("serve",), ("serve", "--no-worker"), ("worker",)], ids=" ".join
)
def test_the_image_healthcheck_passes_for_every_command(command, tmp_path):
    with service_process(*command, env=_image_env(tmp_path), cwd=tmp_path) as running:
        port = running.wait_for("service.listening")["port"]
        # Inside the container the check sees the same PORT as the service.
        checked = cli("health", cwd=tmp_path, env={"PORT": str(port)})
        assert checked.returncode == 0, checked.stderr
        assert checked.stderr == ""


@pytest.mark.slow
def test_nothing_listening_is_unhealthy_in_one_line(tmp_path):
    url = f"{_nowhere()}/healthz"
    checked = cli("health", "--url", url, cwd=tmp_path)
    assert checked.returncode == 1
    [line] = checked.stderr.strip().splitlines()
    assert line.startswith(f"caption-bridge health: {url}: ") and "refused" in line
    assert "Traceback" not in checked.stderr


@pytest.mark.slow
def test_health_reads_port_from_dotenv_and_needs_no_secret(tmp_path):
    (tmp_path / ".env").write_text("PORT=1\n")  # nothing listens on port 1
    checked = cli("health", cwd=tmp_path)
    assert checked.returncode == 1
    assert "http://127.0.0.1:1/healthz" in checked.stderr
