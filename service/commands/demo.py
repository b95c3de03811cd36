"""`caption-bridge demo`: the whole product on one machine, in a few seconds.

Starts the Iconik simulator and the service (receiver and worker) on free
loopback ports, sends a signed "Send to Captioning" for the seeded assets,
waits for the worker, and prints each bundle. Exits non-zero if any asset
failed.

Safe by default: bundles and queue go to a new temporary folder, whatever
STORAGE_URL, QUEUE_URL or `.env` say (they may name a production share and
queue); only `--storage-url` and `--queue-url` choose otherwise. It says
where it writes, and keeps the folder so the bundles can be opened.
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx2
from pydantic import SecretStr

from service import compose
from service.bundle.manifest import MANIFEST
from service.commands import demo_loop
from service.intake import auth
from service.intake.server import AsyncReady, Server, bind
from service.intake.server import config as server_config
from service.queue import TaskKind
from service.settings import Settings
from service.storage import MAX_MANIFEST_BYTES, Storage, StorageError, open_storage, parse_manifest
from simulator import FORM_VIEW_ID, Simulator

DEMO_APP_ID = "demo-app-id"


@dataclass(frozen=True)
class DemoPlaces:
    """Where the demo writes: the flags given, else a fresh temporary folder."""

    storage_url: str
    queue_url: str
    temporary: Path | None  # the folder made for this run, if any

    @classmethod
    def choose(cls, storage_url: str | None, queue_url: str | None) -> DemoPlaces:
        if storage_url and queue_url:
            return cls(storage_url, queue_url, None)
        folder = Path(tempfile.mkdtemp(prefix="caption-bridge-demo-"))
        return cls(
            storage_url or str(folder / "bundles"),
            queue_url or f"sqlite:///{folder / 'queue.db'}",
            folder,
        )

    def describe(self) -> str:
        from service.queue import describe_queue_url

        where = f"bundles in {self.storage_url}, queue {describe_queue_url(self.queue_url)}"
        if self.temporary is None:
            return f"demo: {where} (as given)"
        return (
            f"demo: {where}: a new temporary folder, kept so you can open the bundles "
            f"(remove {self.temporary} when done; --storage-url and --queue-url choose "
            "other places; STORAGE_URL and QUEUE_URL are not used)"
        )


async def run_demo(base: Settings, out: TextIO | None = None, max_wait: float = 120) -> int:
    out = out or sys.stdout  # the one in place now, not at import
    token = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(24)
    simulator = Simulator(DEMO_APP_ID, token)
    seeded = simulator.seed()
    user_token = secrets.token_urlsafe(12)  # the clicking user's, as Iconik sends it
    simulator.add_user(user_token, "demo editor")
    demo_loop.add_status_view(simulator)

    sim_ready, app_ready = AsyncReady(), AsyncReady()
    sim_server = Server(
        server_config(simulator.app(), lifespan="off"),
        bind("127.0.0.1", 0),
        handle_signals=False,
        on_ready=sim_ready,
    )
    app_sock = bind("127.0.0.1", 0)
    sim_url = sim_server.url
    app_url = f"http://127.0.0.1:{app_sock.getsockname()[1]}"
    # The user's storage, queue and tuning; the demo owns credentials and Iconik.
    settings = base.model_copy(
        update={
            "iconik_url": sim_url,
            "iconik_app_id": DEMO_APP_ID,
            "iconik_auth_token": SecretStr(token),
            "webhook_secrets": [SecretStr(secret)],
            "bearer_tokens": [SecretStr(token)],
            "metadata_view_ids": [seeded.view_id],
            "allow_original_media": True,
            "proxy_wait_seconds": 3.0,
            # Looked at often, so a delivered file comes back in a few seconds.
            "deliver_scan_seconds": 0.5,
            "caption_status_view_id": demo_loop.STATUS_VIEW_ID,
        }
    )
    storage = open_storage(settings.storage_url)
    # A demo's worker looks at the queue and for proxies often: seconds matter.
    app = compose.build_app(
        settings, storage=storage, poll_interval=0.1, proxy_retry_delay=lambda waited: 0.5
    )
    app_server = Server(server_config(app), app_sock, handle_signals=False, on_ready=app_ready)

    print(f"Iconik simulator on {sim_url}; caption bridge on {app_url}", file=out)
    print(f"Bundles go to {storage.description}", file=out)
    looped = False
    async with anyio.create_task_group() as group:
        group.start_soon(sim_server.serve_here)
        group.start_soon(app_server.serve_here)
        try:
            with anyio.fail_after(30):
                await sim_ready.event.wait()
                await app_ready.event.wait()
            if not (sim_server.started and app_server.started):
                print("demo: a server did not start; see the log above", file=out)
                return 1
            result = await _click_and_wait(
                app_url, secret, token, user_token, seeded.all, out, max_wait
            )
            if result is not None:
                await _print_bundles(storage, result, out)
                async with compose.iconik_client(settings) as iconik:
                    looped = await demo_loop.close_the_loop(
                        simulator, iconik, storage, app_url, token, seeded.normal, out, max_wait
                    )
        finally:
            sim_server.should_exit = app_server.should_exit = True
    if result is None:
        return 1
    failed = [t for t in result["tasks"] if t["state"] == "failed"]
    for task in failed:
        print(f"FAILED {task['asset_id']}: {task['error']}", file=out)
    print("demo: all bundles ready" if not failed else "demo: some assets failed", file=out)
    return 1 if failed or not looped else 0


async def _click_and_wait(
    app_url: str,
    secret: str,
    token: str,
    user_token: str,
    asset_ids: list[str],
    out: TextIO,
    max_wait: float,
) -> dict[str, Any] | None:
    action = {
        "user_id": "00000000-0000-4000-8000-00000000d3e0",
        "system_domain_id": "00000000-0000-4000-8000-00000000d0a1",
        "context": "BULK",
        "action_id": "00000000-0000-4000-8000-0000000000ac",
        "asset_ids": asset_ids,
        "collection_ids": [],
        "saved_search_ids": [],
        "metadata_view_id": FORM_VIEW_ID,
        "metadata_values": {
            "target_languages": {"field_values": [{"value": "en"}, {"value": "fr"}]},
            "due_date": {"field_values": [{"value": "2026-12-01"}]},
            "notes": {"field_values": [{"value": "Speaker names in CAPS, please."}]},
        },
        "date_created": datetime.now(UTC).replace(tzinfo=None).isoformat(),
        "auth_token": user_token,
    }
    body = json.dumps(action, separators=(",", ":")).encode()
    headers = {"X-Iconik-Signature": auth.sign(secret.encode(), body)}
    async with httpx2.AsyncClient(base_url=app_url, timeout=10) as client:
        answer = await client.post("/iconik/custom-action", content=body, headers=headers)
        if answer.status_code != 202:
            print(f"demo: the service answered {answer.status_code}: {answer.text}", file=out)
            return None
        request_id = answer.json()["request_id"]
        print(f"Send to Captioning: {len(asset_ids)} assets, request {request_id}", file=out)
        with anyio.move_on_after(max_wait) as scope:
            while True:
                status: dict[str, Any] = (
                    await client.get(
                        f"/requests/{request_id}", headers={"Authorization": f"Bearer {token}"}
                    )
                ).json()
                if status["status"] in ("done", "done_with_errors", "failed"):
                    return status
                await anyio.sleep(0.2)
        if scope.cancelled_caught:
            print(f"demo: not finished after {max_wait:.0f}s: {status}", file=out)
        return None


async def _print_bundles(storage: Storage, status: dict[str, Any], out: TextIO) -> None:
    print("", file=out)
    for task in status["tasks"]:
        if task["kind"] != TaskKind.BUILD or task["state"] != "done":
            continue
        for folder in await storage.find_bundles(task["asset_id"]):
            try:
                raw = await storage.read_file(folder, MANIFEST, limit=MAX_MANIFEST_BYTES) or b""
            except StorageError:  # not a plain file, or too large: shown as empty
                raw = b""
            manifest = parse_manifest(raw) or {}
            print(
                f"{folder}/  ({manifest.get('status')}, revision {manifest.get('revision')})",
                file=out,
            )
            for entry in [*manifest.get("files", []), {"path": MANIFEST, "size": len(raw)}]:
                print(f"    {entry['path']:<44} {entry['size']:>10,} bytes", file=out)
