"""What a bundle is: its folder name, its paths and its manifest. Pure.

A bundle is the folder a captioner opens:

    <title, made safe> [<asset_id>]/
      project.json          the manifest, written last: present means complete
      index.html            offline preview: the captioner's workspace, the media
                            with a cue list per track (service/bundle/preview.py)
      media/<proxy filename>
      captions/<language>[.cc].vtt and .srt (Iconik's .srt, or one made from its WebVTT)
      deliver/              the captioners' out-tray (service/bundle/outtray.py)

Nothing here does I/O; the worker gathers the facts, storage writes bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from service.logging import redact_all

SCHEMA = "caption-bundle/1"
MANIFEST = "project.json"
# Where project.json waits while a published bundle is changed in place.
MANIFEST_ASIDE = ".project.json.previous"
PREVIEW = "index.html"
WITHDRAWN_NOTE = "WITHDRAWN.txt"

_MAX_TITLE_CHARS = 80
_MAX_TITLE_BYTES = 160  # with the id, well under the 255-byte file name limit
# Characters that are path separators or reserved on some file system the
# captioners' shares may use (SMB, NTFS, macOS).
_RESERVED = re.compile(r'[\\/:*?"<>|]')
_ASSET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_LANGUAGE = re.compile(r"[^A-Za-z0-9_-]")


class BundleError(ValueError):
    """The asset cannot become a bundle (the message says why)."""


def is_valid_asset_id(asset_id: str) -> bool:
    """Iconik ids are UUIDs; anything that could steer a path is refused."""
    return bool(_ASSET_ID.fullmatch(asset_id))  # not `match`: "$" lets a final newline by


def safe_name(text: str, max_chars: int = _MAX_TITLE_CHARS, fallback: str = "untitled") -> str:
    """`text` as a single, harmless path component."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    text = _RESERVED.sub("_", text)
    text = re.sub(r"\.{2,}", ".", text)  # no "..", anywhere
    text = re.sub(r"\s+", " ", text).strip(" .")
    text = text[:max_chars].rstrip(" .")
    while len(text.encode("utf-8")) > _MAX_TITLE_BYTES:
        text = text[:-1].rstrip(" .")
    return text or fallback


def folder_name(title: str | None, asset_id: str) -> str:
    if not is_valid_asset_id(asset_id):
        raise BundleError(f"asset id {asset_id!r} is not an Iconik id")
    return f"{safe_name(title or '')} [{asset_id}]"


def media_path(filename: str | None, fallback: str) -> str:
    name = safe_name((filename or "").rsplit("/", 1)[-1], max_chars=120, fallback=fallback)
    return f"media/{name}"


def caption_path(language: str, closed_captions: bool, extension: str = "vtt") -> str:
    lang = _LANGUAGE.sub("_", language)[:32] or "und"
    return f"captions/{lang}{'.cc' if closed_captions else ''}.{extension}"


def caption_label(language: str, closed_captions: bool) -> str:
    """A caption track's name as people see it: on the page, in Iconik, in errors."""
    return f"{language} (closed captions)" if closed_captions else language


def beside(path: str, revision: int) -> str:
    """Where Iconik's version goes when a captioner has edited `path`."""
    stem, dot, extension = path.rpartition(".")
    return f"{stem}.iconik-r{revision}.{extension}" if dot else f"{path}.iconik-r{revision}"


@dataclass(frozen=True)
class BundleFile:
    """One file the service wrote into a bundle."""

    path: str
    size: int
    sha256: str
    kind: str  # "media" | "caption" | "preview"
    language: str | None = None
    closed_captions: bool | None = None
    format: str | None = None
    source: str | None = None  # "proxy" | "original" | "webvtt" | "srt"
    iconik_id: str | None = None  # the proxy or file it came from, to know it again

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> BundleFile:
        """A file as a previous manifest listed it (kept without fetching it again)."""
        return cls(**{k: v for k, v in entry.items() if k in cls.__dataclass_fields__})

    @classmethod
    def of(cls, path: str, data: bytes, kind: str) -> BundleFile:
        return cls(path, len(data), hashlib.sha256(data).hexdigest(), kind)

    def entry(self) -> dict[str, Any]:
        """The file as project.json lists it."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class AssetFacts:
    """What the manifest says about the Iconik asset."""

    id: str
    title: str
    version_id: str | None = None
    duration_seconds: float | None = None
    frame_rate: str | None = None
    start_timecode: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    web_url: str | None = None
    # {field name: label} of the METADATA_VIEW_IDS views, for the preview page.
    metadata_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestFacts:
    """What the manifest says about the request that asked for the bundle."""

    request_id: str
    action_id: str | None = None
    context: str | None = None
    requested_by: str | None = None
    requested_at: str | None = None
    metadata_view_id: str | None = None
    form_values: dict[str, Any] = field(default_factory=dict)
    # {field name: label} of the form's metadata view, for the preview page.
    form_labels: dict[str, str] = field(default_factory=dict)
    # The form's due date, parsed once (service/bundle/due_dates.py): ISO 8601 in
    # DUE_DATE_ZONE, and how it was read (or why it was left out).
    due_date: str | None = None
    due_date_note: str | None = None


def flatten_metadata(values: dict[str, Any] | None) -> dict[str, Any]:
    """Iconik's `{"field": {"field_values": [{"value": v}, ...]}}` as `{"field": v | [v, ...]}`.

    Accepts both shapes Iconik uses: the metadata API's `field_values`
    wrapper and the custom-action form's plain lists.
    """
    flat: dict[str, Any] = {}
    for name, entry in (values or {}).items():
        if isinstance(entry, dict) and "field_values" in entry:
            items = [v.get("value") if isinstance(v, dict) else v for v in entry["field_values"]]
        elif isinstance(entry, list):
            items = [v.get("value") if isinstance(v, dict) else v for v in entry]
        else:
            items = [entry]
        items = [v for v in items if v not in (None, "")]
        if not items:
            continue
        flat[name] = items[0] if len(items) == 1 else items
    return flat


def asset_facts(
    asset: dict[str, Any],
    *,
    proxy: dict[str, Any] | None,
    metadata: dict[str, Any],
    web_url: str,
    metadata_labels: dict[str, str] | None = None,
) -> AssetFacts:
    start = asset.get("time_start_milliseconds")
    end = asset.get("time_end_milliseconds")
    duration = (end - start) / 1000 if isinstance(start, int) and isinstance(end, int) else None
    versions = asset.get("versions") or []
    version_id = versions[-1].get("id") if versions else asset.get("original_version_id")
    return AssetFacts(
        id=asset["id"],
        title=asset.get("title") or "",
        version_id=version_id or (proxy or {}).get("version_id"),
        duration_seconds=duration,
        frame_rate=(proxy or {}).get("frame_rate"),
        start_timecode=(proxy or {}).get("start_time_code"),
        metadata=metadata,
        web_url=web_url,
        metadata_labels=dict(metadata_labels or {}),
    )


def build_manifest(
    *,
    asset: AssetFacts,
    request: RequestFacts,
    files: list[BundleFile],
    revision: int,
    generated_at: str,
    status: str = "ready",
    captioner_edits: list[str] | None = None,
    deliveries: list[dict[str, Any]] | None = None,
    tracks_skipped: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    manifest = {
        "schema": SCHEMA,
        "status": status,
        "revision": revision,
        "generated_at": generated_at,
        "asset": asdict(asset),
        "request": asdict(request),
        "files": [f.entry() for f in files],
        # Finished tracks that went from deliver/ to Iconik (service/deliver/task.py).
        "deliveries": list(deliveries or []),
    }
    if captioner_edits:
        # Files the service once wrote and a captioner changed since: theirs now.
        manifest["captioner_edits"] = sorted(captioner_edits)
    if tracks_skipped:
        # Iconik's tracks left out of the bundle, each with why
        # ({"language", "closed_captions", "reason"}): too large, or too many.
        manifest["tracks_skipped"] = list(tracks_skipped)
    return manifest


def withdraw_manifest(
    manifest: dict[str, Any], *, withdrawn_at: str, event_request_id: str | None
) -> dict[str, Any]:
    return {
        **manifest,
        "status": "withdrawn",
        "revision": int(manifest.get("revision", 0)) + 1,
        "withdrawn": {"at": withdrawn_at, "event_request_id": event_request_id},
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    # Redacted like a log line: a value from Iconik could quote a credential.
    text = json.dumps(redact_all(manifest), indent=2, ensure_ascii=False, sort_keys=False)
    return (text + "\n").encode()


def withdrawn_note(manifest: dict[str, Any]) -> str:
    asset = manifest.get("asset", {})
    when = manifest.get("withdrawn", {}).get("at", "")
    return (
        f"This captioning project has been withdrawn.\n\n"
        f'The asset "{asset.get("title", "")}" ({asset.get("id", "")}) was deleted in Iconik '
        f"on {when}.\nNothing in this folder was deleted: your work is still here. Please stop "
        "work on it and check with your contact before delivering anything.\n"
    )
