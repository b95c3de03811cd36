import io

import anyio

from service.demo import run_demo
from tests.conftest import make_settings


def test_demo_builds_every_seeded_bundle_and_exits_zero(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = make_settings(tmp_path, storage_url="bundles", queue_url="sqlite:///data/queue.db")
    out = io.StringIO()
    assert anyio.run(run_demo, base, out) == 0, out.getvalue()
    text = out.getvalue()
    assert "demo: all bundles ready" in text
    folders = [p for p in (tmp_path / "bundles").iterdir() if not p.name.startswith(".")]
    assert len(folders) == 5
    assert all((p / "project.json").exists() for p in folders)
    for folder in folders:
        assert folder.name in text


def test_demo_prints_bundles_from_a_file_url_storage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "shared"
    base = make_settings(
        tmp_path, storage_url=f"file://{target}", queue_url="sqlite:///data/queue.db"
    )
    out = io.StringIO()
    assert anyio.run(run_demo, base, out) == 0, out.getvalue()
    folders = [p.name for p in target.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 5 and all(f"{name}/" in out.getvalue() for name in folders)
