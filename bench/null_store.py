"""The service's app with a queue that stores nothing: `python -m bench.null_store`.

Everything the service does for a delivery except storing it (read,
verify, parse, the stored form, the log line, the metrics), on the same
server stack as the floor (bench/floor.py) and the service. Its ratio to
the floor is what the request path alone costs; the service's, below it,
adds the durable commit. Only the `ack` benchmark runs it.
"""

from __future__ import annotations

import sys

from service import logging as service_logging
from service.intake.app import create_app
from service.intake.server import Server, bind, config
from service.queue import Delivery, Enqueued
from service.settings import Settings


class NullQueue:
    """Answers every delivery as newly queued, and keeps none of them."""

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def enqueue(self, delivery: Delivery, request_id: str) -> Enqueued:
        return Enqueued(request_id, duplicate=False)


def main() -> int:
    service_logging.configure("json")
    app = create_app(Settings(), queue=NullQueue())  # type: ignore[arg-type]
    return Server(config(app), bind("127.0.0.1", 0)).run_here()


if __name__ == "__main__":
    sys.exit(main())
