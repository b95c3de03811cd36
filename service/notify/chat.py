"""Notifications to people: Slack, Microsoft Teams, e-mail and the rest, each
one Apprise URL in NOTIFY_URLS (https://github.com/caronc/apprise).

Apprise knows 100+ services behind one URL scheme each (`slack://`,
`msteams://`, `mailtos://`, `json://`...), with their own authentication
and message formats, so adding a house's chat tool is a setting, not code.
Its URLs hold secrets (tokens, passwords): they are never logged, never in
an error; a destination is named by its key (`apprise-<n>-<scheme>`).
"""

from __future__ import annotations

import logging

import anyio.to_thread
import apprise

from service.notify.channel import SendFailed, message
from service.queue import Event

# Apprise's own log lines can quote a target's URL: they go nowhere.
logging.getLogger("apprise").propagate = False


def _asset() -> apprise.AppriseAsset:
    # Nothing on disk (Apprise can keep state in a folder of its own).
    return apprise.AppriseAsset(storage_mode="memory", secure_logging=True)


def check_url(url: str, number: int) -> None:
    """ValueError, naming the entry's place (never the URL), unless Apprise knows the URL."""
    if apprise.Apprise.instantiate(url, asset=_asset()) is None:
        raise ValueError(
            f"entry {number} is not a URL Apprise knows (see Apprise's list of services)"
        )


def scheme_of(url: str) -> str:
    scheme = url.split("://", 1)[0].lower() if "://" in url else "unknown"
    return "".join(c for c in scheme if c.isalnum())[:20] or "unknown"


class AppriseChannel:
    kind = "apprise"

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._apprise = apprise.Apprise(asset=_asset())
        if not self._apprise.add(url):
            raise ValueError("not a URL Apprise knows")
        self.scheme = scheme_of(url)
        self.timeout = timeout
        # One send at a time per target (Apprise objects are not made for
        # concurrent use), in a thread: its calls block.
        self._limiter = anyio.CapacityLimiter(1)

    async def send(self, event: Event) -> None:
        title, body = message(event)
        sent = await anyio.to_thread.run_sync(self._notify, title, body, limiter=self._limiter)
        if not sent:
            raise SendFailed(f"the {self.scheme} target did not take it (Apprise)")

    def _notify(self, title: str, body: str) -> bool:
        try:
            return bool(self._apprise.notify(body=body, title=title, timeout=self.timeout))
        except Exception:  # a plugin's bug must not end the sender
            return False

    async def close(self) -> None:
        return None
