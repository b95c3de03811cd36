"""What the simulated Iconik holds, and the changes tests and the demo make to it.

Its state is plain Python, so tests change it directly: finish a transcode,
delete an asset, add a subtitle, fail the next few calls, or hold a download
half-way until released. The HTTP side (core.py and the endpoint modules)
reads and writes this state; nothing here knows about routes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from simulator.blob import Blob, DownloadGate

# Iconik's limits per token: 50 calls in any 1 s, 1000 in any 20 s.
ICONIK_LIMITS = ((50, 1.0), (1000, 20.0))


@dataclass
class SimAsset:
    asset: dict[str, Any]
    proxies: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    subtitles: list[dict[str, Any]] = field(default_factory=list)
    # Each track's WebVTT: text, or a Blob for one too large to hold (served as it streams).
    webvtt: dict[tuple[str, bool], str | Blob] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Proxy listings left before a transcoding proxy turns CLOSED (None: never by itself).
    transcode_polls_left: int | None = None


@dataclass
class SimUser:
    token: str
    name: str
    cannot_read: set[str] = field(default_factory=set)  # asset ids
    expired: bool = False


@dataclass(frozen=True)
class SentWebhook:
    url: str
    body: dict[str, Any]
    status: int | None  # the receiver's answer; None: not reached
    error: str | None = None


def stable_uuid(name: str) -> str:
    """A stable UUID per seeded name, so ids are the same in every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"caption-bridge-simulator/{name}"))


def track_key(asset_id: str, language: str, closed_captions: bool) -> str:
    """What `hold_download` calls the WebVTT of a track (one that is a Blob)."""
    return f"webvtt/{asset_id}/{language}{'/cc' if closed_captions else ''}"


def now() -> str:
    return datetime.now(UTC).isoformat()


def errors(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Iconik's error answer: `{"errors": [message]}`."""
    return JSONResponse({"errors": [message]}, status_code=status, headers=headers)


async def json_object(request: Request) -> dict[str, Any] | None:
    """The request's body if it is a JSON object, else None."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class IconikState:
    """Assets, users, registrations and what the API saw; faults to inject."""

    system_domain_id = "00000000-0000-4000-8000-00000000d0a1"

    def __init__(
        self,
        app_id: str,
        auth_token: str,
        *,
        limits: tuple[tuple[int, float], ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app_id = app_id
        self.auth_token = auth_token
        self.assets: dict[str, SimAsset] = {}
        self.collections: dict[str, list[dict[str, Any]]] = {}
        self.saved_searches: dict[str, list[dict[str, Any]]] = {}
        self.custom_actions: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}  # metadata view definitions, by id
        self.fields: dict[str, dict[str, Any]] = {}  # metadata fields, by name
        self.jobs: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, Blob] = {}
        self.formats: dict[str, dict[str, Any]] = {}  # created through the API, by id
        self.users: dict[str, SimUser] = {}
        self.search_lag: set[str] = set()  # asset ids the search does not find yet
        # What the API saw, for tests.
        self.requests: list[tuple[str, str]] = []  # API calls, as (method, path)
        self.bodies: list[tuple[str, str, Any]] = []  # writes, as (method, path, JSON body)
        self.calls_by: list[tuple[str, str, str]] = []  # (method, path, user or "application")
        self.searches: list[tuple[str, list[str]]] = []  # (who, the ids its filter named)
        # Every asset metadata write, as (asset_id, view_id, metadata_values).
        self.metadata_writes: list[tuple[str, str, dict[str, Any]]] = []
        self.downloads: list[str] = []  # signed-URL fetches, by blob key
        # Faults to inject.
        self.faults: dict[str, list[int | None]] = {}
        self.storage_faults: dict[str, list[int]] = {}
        self.gates: dict[str, DownloadGate] = {}
        self.cuts: dict[str, int] = {}
        self.retry_after = "0"  # the Retry-After of 429s injected by fail_next
        self.echo_credentials = False  # injected faults quote the request's Auth-Token
        self.fault_message = "injected fault"  # what the answers of injected faults say
        # Rate limits as Iconik enforces them (`ICONIK_LIMITS`): API calls
        # over any window get 429 with a Retry-After. Off unless asked for.
        self.limits = limits
        self.clock = clock
        self.recent_calls: deque[float] = deque()  # accepted API calls, oldest first
        self.throttled = 0  # how many calls got a 429 from the limits
        # Signed URLs: on this origin, or the base URL (ending in "/") of a
        # server running storage_app(); they expire with `signed_url_life` set
        # (seconds, on `url_clock`), refused then (counted in `expired_refusals`).
        self.storage_base: str | None = None
        self.signed_url_life: float | None = None
        self.url_clock: Callable[[], float] | None = None
        self.expired_refusals = 0
        self.sign_search_urls = True  # False: an Iconik that ignores the flags (tests)
        # Webhooks sent (webhooks.py): signed with `webhook_secret` when set.
        self.webhook_secret: str | None = None
        self.webhook_deliveries: list[SentWebhook] = []
        self.webhook_sent = threading.Condition()
        self.lock = threading.Lock()

    # -- assets and their files ----------------------------------------------

    def add_asset(self, name: str, title: str, *, duration_ms: int = 2000) -> SimAsset:
        asset_id = stable_uuid(name)
        created = now()
        sim = SimAsset(
            asset={
                "id": asset_id,
                "title": title,
                "type": "ASSET",
                "status": "ACTIVE",
                "is_online": True,
                "archive_status": "NOT_ARCHIVED",
                "date_created": created,
                "date_modified": created,
                "time_start_milliseconds": 0,
                "time_end_milliseconds": duration_ms,
                "versions": [{"id": stable_uuid(name + "/v1"), "date_created": created}],
            }
        )
        self.assets[asset_id] = sim
        return sim

    def add_blob(self, key: str, blob: Blob) -> None:
        self.blobs[key] = blob

    def add_proxy(
        self,
        sim: SimAsset,
        *,
        name: str,
        blob: Blob,
        status: str = "CLOSED",
        width: int = 1280,
        height: int = 720,
        codec: str = "h264",
        fmt: str = "MP4",
    ) -> dict[str, Any]:
        asset_id = sim.asset["id"]
        proxy_id = stable_uuid(f"{asset_id}/proxy/{name}")
        self.add_blob(f"proxies/{proxy_id}", blob)
        proxy = {
            "id": proxy_id,
            "asset_id": asset_id,
            "name": name,
            "filename": name,
            "codec": codec,
            "format": fmt,
            "frame_rate": "25",
            "start_time_code": "10:00:00:00",
            "is_drop_frame": False,
            "resolution": {"width": width, "height": height},
            "size": blob.size,
            "status": status,
            "version_id": sim.asset["versions"][0]["id"],
            "storage_method": "GCS",
        }
        sim.proxies.append(proxy)
        return proxy

    def add_file(self, sim: SimAsset, *, name: str, blob: Blob, format_id: str) -> dict[str, Any]:
        asset_id = sim.asset["id"]
        file_id = stable_uuid(f"{asset_id}/file/{name}")
        self.add_blob(f"files/{file_id}", blob)
        record = {
            "id": file_id,
            "asset_id": asset_id,
            "name": name,
            "original_name": name,
            "directory_path": "",
            "file_set_id": stable_uuid(f"{asset_id}/fileset/{format_id}"),
            "format_id": format_id,
            "size": blob.size,
            "status": "CLOSED",
            "type": "FILE",
            "version_id": sim.asset["versions"][0]["id"],
        }
        sim.files.append(record)
        return record

    def add_subtitle(
        self,
        sim: SimAsset,
        language: str,
        webvtt: str | Blob,
        *,
        closed_captions: bool = False,
        srt: str | Blob | None = None,
    ) -> dict[str, Any]:
        asset_id = sim.asset["id"]
        format_id = stable_uuid(f"{asset_id}/subtitle-format/{language}/{closed_captions}")
        subtitle = {
            "id": stable_uuid(f"{asset_id}/subtitle/{language}/{closed_captions}"),
            "asset_id": asset_id,
            "language": language,
            "closed_captions": closed_captions,
            "format_id": format_id,
            "name": f"{language}{' (CC)' if closed_captions else ''}",
            "version_id": sim.asset["versions"][0]["id"],
        }
        sim.subtitles = [
            s
            for s in sim.subtitles
            if (s["language"], s["closed_captions"]) != (language, closed_captions)
        ] + [subtitle]
        sim.webvtt[(language, closed_captions)] = webvtt
        if srt is not None:
            if isinstance(srt, str):
                data = srt.encode()
                srt = Blob(len(data), data, content_type="text/srt")
            self.add_file(sim, name=f"{language}.srt", blob=srt, format_id=format_id)
        return subtitle

    def finish_transcode(self, asset_id: str) -> None:
        for proxy in self.assets[asset_id].proxies:
            proxy["status"] = "CLOSED"

    def delete_asset(self, asset_id: str) -> None:
        self.assets[asset_id].asset["status"] = "DELETED"

    def tracks(self, asset_id: str, language: str, closed_captions: bool) -> list[dict[str, Any]]:
        """The asset's subtitle records of one language and kind (for tests)."""
        return [
            s
            for s in self.assets[asset_id].subtitles
            if (s["language"], s["closed_captions"]) == (language, closed_captions)
        ]

    # -- metadata --------------------------------------------------------------

    def add_view(
        self, view_id: str, name: str, fields: Iterable[tuple[str, str, str]]
    ) -> dict[str, Any]:
        """A view of `fields`, each (name, label, field_type)."""
        view = {
            "id": view_id,
            "name": name,
            "description": None,
            "date_created": "2026-01-05T09:00:00+00:00",
            "date_modified": "2026-01-05T09:00:00+00:00",
            "view_fields": [
                {"name": field, "label": label, "field_type": field_type}
                for field, label, field_type in fields
            ],
        }
        self.views[view_id] = view
        return view

    def metadata_value(self, asset_id: str, view_id: str, field: str) -> Any:
        """The first value of `field` on the asset in that view, or None (for tests)."""
        values = self.assets[asset_id].metadata.get(view_id, {}).get(field) or {}
        first = (values.get("field_values") or [{}])[0]
        return first.get("value")

    # -- users -----------------------------------------------------------------

    def add_user(
        self, token: str, name: str = "editor", cannot_read: tuple[str, ...] = ()
    ) -> SimUser:
        user = SimUser(token, name, set(cannot_read))
        self.users[token] = user
        return user

    def expire_user(self, token: str) -> None:
        self.users[token].expired = True

    # -- faults ----------------------------------------------------------------

    def fail_next(self, path_fragment: str, *statuses: int | None) -> None:
        """The next calls whose path contains `path_fragment` answer these statuses.

        None lets that call through, so faults can be spread among good answers.
        """
        self.faults.setdefault(path_fragment, []).extend(statuses)

    def fail_storage_next(self, key: str, *statuses: int) -> None:
        """The next downloads of the blob `key` (e.g. "proxies/<id>") answer these statuses."""
        with self.lock:
            self.storage_faults.setdefault(key, []).extend(statuses)

    def cut_next_download(self, key: str, after_bytes: int) -> None:
        """The next download of `key` stops after `after_bytes`, short of its Content-Length."""
        with self.lock:
            self.cuts[key] = after_bytes

    def hold_download(self, key: str, after_bytes: int) -> DownloadGate:
        """The next download of `key` waits after `after_bytes` until the gate is released.

        `key` is a blob's ("proxies/<id>"), or a WebVTT track's (`track_key`).
        """
        gate = DownloadGate(after_bytes)
        self.gates[key] = gate
        return gate

    # -- signed URLs (tests replace these to make Iconik hand out odd ones) ---

    def signed_url(self, request: Request, key: str) -> str:
        # A signature-like query, as real signed URLs carry (and nothing may
        # quote); the simulator does not check it.
        base = self.storage_base or str(request.base_url)
        expires = self.url_expiry()
        return f"{base}storage/{key}?Expires={expires}&Signature={uuid.uuid4().hex}"

    def with_urls(self, request: Request, kind: str, items: list[dict[str, Any]]) -> Any:
        """Listing records as Iconik gives them with generate_signed_url=true (each has `url`)."""
        if request.query_params.get("generate_signed_url") != "true":
            return items
        return [{**item, "url": self.signed_url(request, f"{kind}/{item['id']}")} for item in items]

    def url_expiry(self) -> str:
        """The `Expires` of a URL signed now."""
        if self.signed_url_life is None or self.url_clock is None:
            return "4102444800"
        return str(int(self.url_clock() + self.signed_url_life))

    # -- webhooks sent ---------------------------------------------------------

    def wait_for_webhooks(self, count: int, timeout: float = 10) -> list[SentWebhook]:
        """Block until `count` webhooks were sent (bounded): for tests and the demo's thread."""
        with self.webhook_sent:
            self.webhook_sent.wait_for(lambda: len(self.webhook_deliveries) >= count, timeout)
            return list(self.webhook_deliveries)
