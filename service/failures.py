"""The failure no retry can fix, below every stage that raises it.

A task ends failed at once, its reason shown to people, when it raises
`TaskFailed`: the work's task kinds do (service/work/tasks.py re-exports it
for them), and so do lower layers whose errors retrying cannot cure (the
Iconik client's `UnusableId` and `UnusableUrl`). It lives here, importing
nothing of the service at run time, so those layers need not import the
work that runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.queue import Event


class TaskFailed(Exception):
    """The task cannot succeed by retrying; the message is the reason shown to people.

    `events` are stored with the failure (a refused delivery's notification)."""

    def __init__(self, reason: str, events: list[Event] | None = None) -> None:
        super().__init__(reason)
        self.events = events or []
