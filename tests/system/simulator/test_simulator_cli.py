"""`caption-bridge simulator` as a real process: what it prints, what it accepts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx2
import pytest


def start_simulator(cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    """The simulator's process, and what it printed up to its asset ids (bounded: 30 s)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "simulator", "--port", "0", "--large-proxy-mb", "1"],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    watchdog = threading.Timer(30, process.kill)
    watchdog.start()
    lines: list[str] = []
    assert process.stdout is not None
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Seeded asset ids:"):
                break
    finally:
        watchdog.cancel()
    assert lines and lines[-1].startswith("Seeded asset ids:"), lines
    return process, lines


def setting(lines: list[str], name: str) -> str:
    [value] = [line.split("=", 1)[1] for line in lines if line.strip().startswith(f"{name}=")]
    return value.split("  #")[0].strip()


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.slow
def test_the_simulator_prints_how_to_point_the_service_at_it(tmp_path):
    process, lines = start_simulator(tmp_path, {})
    try:
        url, token = setting(lines, "ICONIK_URL"), setting(lines, "ICONIK_AUTH_TOKEN")
        assert token == "simulator-auth-token"
        assert setting(lines, "ICONIK_APP_ID") == "simulator-app-id"
        assert setting(lines, "ALLOW_ORIGINAL_MEDIA") == "true"
        assert setting(lines, "PROXY_WAIT_SECONDS") == "0"  # or the original waits an hour
        asset = lines[-1].split()[3]
        headers = {"App-ID": "simulator-app-id", "Auth-Token": token}
        answer = httpx2.get(f"{url}/API/assets/v1/assets/{asset}/", headers=headers)
        assert answer.status_code == 200, answer.text
    finally:
        stop(process)


@pytest.mark.slow
def test_the_simulator_reads_dotenv_like_the_service_and_never_prints_its_token(tmp_path):
    (tmp_path / ".env").write_text(
        "ICONIK_URL=https://app.iconik.io\n"
        "ICONIK_APP_ID=app-from-dotenv\n"
        "ICONIK_AUTH_TOKEN=token-from-dotenv-7f3a\n"
    )
    process, lines = start_simulator(tmp_path, {})
    try:
        text = "\n".join(lines)
        assert "token-from-dotenv-7f3a" not in text
        assert setting(lines, "ICONIK_APP_ID") == "app-from-dotenv"
        assert "ICONIK_URL is https://app.iconik.io here now" in text
        url, asset = setting(lines, "ICONIK_URL"), lines[-1].split()[3]
        ask = f"{url}/API/assets/v1/assets/{asset}/"
        mine = {"App-ID": "app-from-dotenv", "Auth-Token": "token-from-dotenv-7f3a"}
        assert httpx2.get(ask, headers=mine).status_code == 200
        default = {"App-ID": "simulator-app-id", "Auth-Token": "simulator-auth-token"}
        assert httpx2.get(ask, headers=default).status_code == 401
    finally:
        stop(process)
