"""At start-up, one log line per dependency, with its outcome.

`startup.dependency` says, for the queue, the bundle storage and (where
this process calls it) Iconik, whether it works now and, if not, why: a
wrong ICONIK_URL or token, or an unwritable STORAGE_URL, shows in the first
lines of the log instead of only in each task's retries.

Nothing here stops the service: /readyz (queue and storage) and the tasks'
retries already deal with a dependency that is away, and one that comes back
is used without a restart. Iconik is checked with a GET of an asset that
does not exist: "not found" proves the address and the credentials; 401/403
or no answer says which is wrong. (Iconik is not in /readyz on purpose: a
receiver that cannot reach Iconik must still store clicks; see the README.)
"""

from __future__ import annotations

from typing import Any

from service import logging as service_logging
from service.iconik.client import IconikClient
from service.iconik.errors import CredentialsRejected, IconikError, NotFound

log = service_logging.get_logger("service.startup")

# An asset id no Iconik holds: its 404 proves address and credentials.
PROBE_ASSET_ID = "00000000-0000-4000-8000-000000000000"


async def log_dependencies(
    queue: Any, storage: Any, iconik: IconikClient | None = None, *, queue_where: str = ""
) -> dict[str, str | None]:
    """Check each dependency once and log its outcome; returns {name: problem or None}."""
    outcomes: dict[str, str | None] = {}
    outcomes["queue"] = await _outcome(queue.ping)
    _log("queue", queue_where or type(queue).__name__, outcomes["queue"])
    outcomes["storage"] = await _outcome(storage.ping)
    _log("storage", storage.description, outcomes["storage"])
    if iconik is not None:
        outcomes["iconik"] = await iconik_problem(iconik)
        _log("iconik", iconik.base_url, outcomes["iconik"])
    return outcomes


async def iconik_problem(iconik: IconikClient) -> str | None:
    """None when Iconik answers and accepts the credentials, else why not."""
    try:
        await iconik.get_asset(PROBE_ASSET_ID)
    except NotFound:
        return None  # reached, and the credentials were accepted
    except CredentialsRejected as exc:
        return f"credentials refused: {exc}"
    except IconikError as exc:
        return f"unreachable or failing: {exc}"
    return None


async def _outcome(check: Any) -> str | None:
    try:
        await check()
    except Exception as exc:  # any failure is the outcome to report, not a crash
        return str(exc) or type(exc).__name__
    return None


def _log(dependency: str, where: str, problem: str | None) -> None:
    if problem is None:
        log.info("startup.dependency", dependency=dependency, where=where, outcome="ok")
    else:
        log.warning(
            "startup.dependency",
            dependency=dependency,
            where=where,
            outcome="failed",
            reason=problem,
        )


def check_in_background(
    group: Any, services: Any, storage: Any, iconik: IconikClient | None = None
) -> None:
    """Start the checks beside the service in `group`: they never delay start-up."""
    from service.queue import describe_queue_url

    where = describe_queue_url(services.settings.queue_url)

    async def run() -> None:
        await log_dependencies(services.queue, storage, iconik, queue_where=where)

    group.start_soon(run)
