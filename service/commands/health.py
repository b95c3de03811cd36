"""`caption-bridge health`: the container image's HEALTHCHECK.

GET /healthz of the process on this machine's PORT (or `--url`): exit 0 if
it answers `{"status": "ok"}`, else 1 with one line saying what failed. It
reads PORT only (from the environment or `.env`), so the probe needs none of
the service's secrets. One check fits `serve`, `serve --no-worker` and
`worker` because the image sets WORKER_HTTP (a worker answers on PORT too):
the worker's HTTP server runs in the event loop its tasks run in, so an
answer shows that loop is not stuck.
"""

from __future__ import annotations

import json
import sys
import urllib.request

# Docker's HEALTHCHECK gives 30 s by default; a live process answers /healthz in milliseconds.
HEALTH_TIMEOUT_SECONDS = 5.0


def check(url: str | None) -> int:
    """Probe the service's /healthz (PORT's, or `url`); the exit code."""
    if url is None:
        from service.settings import load_port

        url = f"http://127.0.0.1:{load_port()}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_SECONDS) as answer:  # noqa: S310
            body = json.loads(answer.read(4096))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"caption-bridge health: {url}: {reason}", file=sys.stderr)
        return 1
    if body != {"status": "ok"}:
        print(f"caption-bridge health: {url} answered {body!r}", file=sys.stderr)
        return 1
    return 0
