"""What every notification channel shares: how a send fails, and the short
human message an event reads as (for Slack, Teams, e-mail: Apprise).

A message says what changed and where the work is (the bundle folder's
name): never a URL, a secret or a path on a server.
"""

from __future__ import annotations

from typing import Any, Protocol

from service.bundle import due_dates
from service.queue import (
    DELIVERED,
    DUE_SOON,
    OVERDUE,
    PUBLISHED,
    REFRESHED,
    REFUSED,
    WITHDRAWN,
    Event,
)


class SendFailed(Exception):
    """The destination did not take the event; the message says why, without its URL."""


class Channel(Protocol):
    kind: str  # "webhook" | "apprise": the metrics' label

    async def send(self, event: Event) -> None: ...  # raises SendFailed
    async def close(self) -> None: ...


_TITLES = {
    PUBLISHED: "New captioning work",
    REFRESHED: "Captioning work changed",
    WITHDRAWN: "Captioning work withdrawn",
    DELIVERED: "Captions delivered",
    REFUSED: "Captions refused",
    DUE_SOON: "Captions due soon",
    OVERDUE: "Captions overdue",
}


def _listed(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def message(event: Event) -> tuple[str, str]:
    """(title, body) of the event, for people."""
    data = event.data
    title = f"{_TITLES.get(event.type, event.type)}: {data.get('title') or event.asset_id}"
    lines: list[str] = []
    if event.type == REFRESHED and data.get("changes"):
        lines.append("What changed: " + _listed(data["changes"]))
    if event.type == REFUSED:
        lines.append(f"File: {data.get('file', '')}")
        if data.get("problem"):
            lines.append(f"Problem: {data['problem']}")
    if data.get("languages"):
        lines.append("Languages: " + _listed(data["languages"]))
    if data.get("missing_languages"):
        lines.append("Still missing: " + _listed(data["missing_languages"]))
    if data.get("due_date"):
        lines.append(f"Due: {due_dates.describe(data['due_date']) or data['due_date']}")
    if data.get("folder"):
        lines.append(f"Folder: {data['folder']}")
    lines.append(f"Asset: {event.asset_id}")
    return title, "\n".join(lines)
