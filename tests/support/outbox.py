"""A recording stand-in for the notification outbox's `emit`."""

from service.queue import Event


class Outbox:
    """Records what the check stores; ids already there are not stored again
    (as Queue.add_events)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.fail = False

    async def __call__(self, events: list[Event]) -> int:
        if self.fail:
            raise RuntimeError("the outbox is away")
        known = {e.event_id for e in self.events}
        new = [e for e in events if e.event_id not in known]
        self.events += new
        return len(new)

    def kinds(self) -> list[tuple[str, str]]:
        return [(e.type, e.data["folder"]) for e in self.events]
