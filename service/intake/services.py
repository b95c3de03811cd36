"""What the routes need, built once per app: the `Services` on `app.state`.

Its own module so that the app (which builds it) and the delivery endpoints
(which read it from the request's app) both import it, and not each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from service.intake import auth
from service.logging import Redactor
from service.metrics import Metrics
from service.queue import Queue
from service.settings import Settings

ReadinessCheck = Callable[[], Awaitable[None]]


class Services:
    """What the routes need, built once per app."""

    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        metrics: Metrics,
        readiness: dict[str, ReadinessCheck],
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.metrics = metrics
        self.readiness = readiness
        self.redactor = Redactor(settings.secret_values())
        self.credentials = auth.Credentials.from_strings(
            (s.get_secret_value() for s in settings.webhook_secrets),
            (t.get_secret_value() for t in settings.bearer_tokens),
        )
