"""The door every simulated Iconik API call passes: recorded, faults, limits, tokens.

Each call is recorded (`requests`, and writes with their bodies in
`bodies`); an injected fault (`fail_next`) answers instead of the endpoint;
over Iconik's rate limits (`limits`, e.g. `ICONIK_LIMITS`) a call gets 429
with a Retry-After; a call without the application's id or a known token
gets 401. Only then does the endpoint answer, and `calls_by` notes who made
the call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from simulator.state import IconikState, errors
from simulator.users import caller

# An endpoint of the simulated API: the state it answers from, and the request.
Handler = Callable[[IconikState, Request], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def gated(sim: IconikState, handler: Handler) -> Endpoint:
    """`handler` as Iconik's API answers it, behind its door."""

    async def endpoint(request: Request) -> Response:
        path = request.url.path
        body = None
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                body = json.loads(await request.body())
            except ValueError:
                body = "<not JSON>"
        with sim.lock:
            sim.requests.append((request.method, path))
            if request.method in ("POST", "PUT", "PATCH"):
                sim.bodies.append((request.method, path, body))
            for fragment, statuses in sim.faults.items():
                if fragment in path and statuses:
                    status = statuses.pop(0)
                    if status is None:
                        break
                    headers = {"Retry-After": sim.retry_after} if status == 429 else None
                    message = sim.fault_message
                    if sim.echo_credentials:  # as a careless gateway does
                        message += f" for Auth-Token {request.headers.get('auth-token')}"
                    return errors(status, message, headers)
            wait = _over_limit(sim)
            if wait is not None:
                sim.throttled += 1
                return errors(429, "Rate limit exceeded", {"Retry-After": str(wait)})
        who = caller(sim, request)  # the application, a user, or None
        if request.headers.get("app-id") != sim.app_id or who is None:
            return errors(401, "Token is invalid")
        sim.calls_by.append((request.method, path, who))
        return await handler(sim, request)

    return endpoint


def _over_limit(sim: IconikState) -> int | None:
    """Whole seconds until a call fits every window again, or None (and counted)."""
    if not sim.limits:
        return None
    now = sim.clock()
    longest = max(window for _, window in sim.limits)
    calls = sim.recent_calls
    while calls and calls[0] <= now - longest:
        calls.popleft()
    waits = []
    for count, window in sim.limits:
        recent = [t for t in calls if t > now - window]
        if len(recent) >= count:
            waits.append(recent[-count] + window - now)
    if waits:
        return max(1, math.ceil(max(waits)))
    calls.append(now)
    return None
