"""A project.json read back from the shared folder, reduced to what the service wrote. Pure.

The manifest lives where captioners write, so whatever is read back may have
been edited: keys added, values of another type, entries of another shape.
The service still needs it (the revision, the files it wrote and their
digests, the deliveries so far, who asked), so it keeps what has the shape
it writes and drops the rest. What it never takes from here is which asset
the folder belongs to or whether it is withdrawn: that is the registry's.
"""

from __future__ import annotations

from typing import Any

from service.bundle.outtray import trusted_caption_deliveries
from service.captions.track import Media

# The manifest's top-level keys (bundle.build_manifest, withdraw_manifest).
_KEYS = frozenset(
    {
        "schema",
        "status",
        "revision",
        "generated_at",
        "asset",
        "request",
        "files",
        "deliveries",
        "captioner_edits",
        "tracks_skipped",
        "withdrawn",
    }
)
_REQUEST_TEXT = (
    "request_id",
    "action_id",
    "context",
    "requested_by",
    "requested_at",
    "due_date",
    "due_date_note",
)
_FILE_TEXT = ("path", "sha256", "kind")
_FILE_OPTIONAL = ("language", "format", "source", "iconik_id")


def manifest(read: Any) -> dict[str, Any] | None:
    """`read` with every part of an unexpected shape dropped or reset; None
    when it is not a manifest at all."""
    if not isinstance(read, dict):
        return None
    kept = {k: v for k, v in read.items() if k in _KEYS}
    revision = kept.get("revision")
    kept["revision"] = revision if _is_count(revision) else 0
    if kept.get("status") not in ("ready", "withdrawn"):
        kept["status"] = "ready"
    if not isinstance(kept.get("asset"), dict):
        kept["asset"] = {}
    kept["asset"] = _asset(kept["asset"])
    kept["files"] = [f for f in _list(kept.get("files")) if _is_file_entry(f)]
    kept["deliveries"] = trusted_caption_deliveries(kept.get("deliveries"))
    edits = [p for p in _list(kept.get("captioner_edits")) if isinstance(p, str)]
    if edits:
        kept["captioner_edits"] = edits
    else:
        kept.pop("captioner_edits", None)
    request = _request(kept.get("request"))
    if request is None:
        kept.pop("request", None)
    else:
        kept["request"] = request
    if not isinstance(kept.get("withdrawn"), dict):
        kept.pop("withdrawn", None)
    return kept


# The media's facts the checks of a delivery use, as Iconik gives them
# ("10:00:00:00", "29.97"): short strings, or they are dropped.
_MEDIA_TEXT = ("start_timecode", "frame_rate")
MAX_MEDIA_TEXT = 32


def _asset(asset: dict[str, Any]) -> dict[str, Any]:
    """The asset facts with those a delivery's checks read in their shape:
    the duration a number, the start timecode and frame rate short strings."""
    duration = asset.get("duration_seconds")  # for the end-of-video check
    drop = {"duration_seconds"} if duration is not None and not _is_number(duration) else set()
    for key in _MEDIA_TEXT:
        value = asset.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= MAX_MEDIA_TEXT):
            drop.add(key)
    return {k: v for k, v in asset.items() if k not in drop}


def media_of(asset: dict[str, Any]) -> Media:
    """The media facts of a read-back manifest's `asset`, for a delivery's checks."""
    return Media(
        asset.get("duration_seconds"),
        asset.get("start_timecode") or None,
        asset.get("frame_rate") or None,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_file_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and all(isinstance(entry.get(k), str) for k in _FILE_TEXT)
        and _is_count(entry.get("size"))
        and all(isinstance(entry.get(k), str | None) for k in _FILE_OPTIONAL)
        and isinstance(entry.get("closed_captions"), bool | None)
    )


def _request(value: Any) -> dict[str, Any] | None:
    """The request facts (bundle.RequestFacts) when they have their shape."""
    if not isinstance(value, dict) or not isinstance(value.get("request_id"), str):
        return None
    facts: dict[str, Any] = {
        k: value.get(k) for k in _REQUEST_TEXT if isinstance(value.get(k), str | None)
    }
    view = value.get("metadata_view_id")
    facts["metadata_view_id"] = view if isinstance(view, str) else None
    form = value.get("form_values")
    facts["form_values"] = form if isinstance(form, dict) else {}
    labels = value.get("form_labels")  # shown on the page: text only
    facts["form_labels"] = (
        {k: v for k, v in labels.items() if isinstance(v, str)} if isinstance(labels, dict) else {}
    )
    return facts
