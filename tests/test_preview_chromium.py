"""The preview page, opened from the bundle folder in real headless Chromium."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from tests.conftest import custom_action_body
from tests.stack import stack

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
    "--dump-dom",
]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(
            "Chromium is not installed and cannot be installed here (needs root and "
            "apt-get): the preview page was not checked in a browser"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.skip(
                f"Chromium could not be installed ({' '.join(command)}: "
                f"{result.stderr.strip()[-300:]}); the preview page was not checked"
            )
    return shutil.which("chromium") or pytest.skip("apt-get installed no chromium binary")


@pytest.fixture(scope="session")
def chromium():
    return _chromium()


@pytest.mark.timeout(1200)  # the first run on a fresh machine installs Chromium
def test_preview_plays_the_video_and_lists_every_caption_track(tmp_path, chromium):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        page = s.bundle_dir(s.seeded.normal) / "index.html"
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", page.as_uri()],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            ).stdout
    status = re.search(r'id="video-status" data-state="(\w+)" data-duration="([\d.]+)"', dom)
    assert status is not None, dom[:2000]
    assert status.group(1) == "loaded"
    assert float(status.group(2)) == pytest.approx(2.0)
    assert 'data-tracks="2"' in dom
    assert 'data-cues="4"' in dom  # two cues in each of en and fr (cc)
    options = re.findall(r'<option value="\d+">([^<]+)</option>', dom)
    assert options == ["en", "fr (closed captions)"]
    assert "Harbour Lights: Episode 1" in dom
