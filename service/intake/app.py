"""The HTTP face of the service: routes, lifespan, error handling.

The delivery endpoints (service.intake.endpoints) do four things and nothing else:
read the body (bounded), verify it, parse it, store it. They never talk to
Iconik or to the bundle storage, so a 202 goes out in milliseconds and
Iconik's ~10 s deadline is never at risk. Every answer, errors included, is
JSON.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.intake import auth
from service.intake.endpoints import DeliveryEndpoint, accept_webhook, custom_action_intake
from service.intake.services import ReadinessCheck, Services
from service.logging import get_logger
from service.metrics import CONTENT_TYPE_LATEST, Metrics
from service.queue import Queue, QueueUnavailable, queue_for
from service.settings import Settings
from service.status.report import request_summary

log = get_logger("service.intake.app")

# How long one SQLite statement on the request path waits for another
# writer's lock. An enqueue waits at most about twice this (opening a
# connection, then its write), which keeps a 503 well inside the 5 s that
# docs/http.md promises (Iconik gives up after ~10 s). SQLiteQueue's own default
# (10 s) still serves the worker-only and `status` processes; PostgreSQL's
# statements time out after the same wait.
STORE_WAIT_SECONDS = 2.0

# `scheme://user:password@host`: the password part, should a store's URL
# ever appear in an error message.
_URL_PASSWORD = re.compile(r"(?<=://)([^/\s:@]+):[^/\s@]+@")

Lifecycle = Callable[["Services"], contextlib.AbstractAsyncContextManager[None]]


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


async def request_status(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        auth.verify_bearer(request.scope["headers"], services.credentials)
    except auth.AuthError as exc:
        services.metrics.auth_failures.labels("requests", exc.reason).inc()
        return error_response(
            401, "unauthenticated", "send Authorization: Bearer <one of BEARER_TOKENS>"
        )
    request_id = request.path_params["request_id"]
    try:
        summary = await request_summary(services.queue, request_id)
    except QueueUnavailable:
        return error_response(503, "store_unavailable", "the queue could not be read")
    if summary is None:
        return error_response(404, "not_found", f"no request with id {request_id}")
    return JSONResponse(summary)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    failures = {}
    for name, check in services.readiness.items():
        try:
            await check()
        except Exception as exc:
            # The message only (it names the path and the errno), never a
            # traceback, and never a configured secret or a URL's password.
            message = _URL_PASSWORD.sub(r"\1:[redacted]@", str(exc) or type(exc).__name__)
            failures[name] = services.redactor(None, "readyz", {"failed": message})["failed"]
    if failures:
        log.warning("readiness.failed", failures=failures)
        return JSONResponse({"status": "unavailable", "failed": failures}, status_code=503)
    return JSONResponse({"status": "ready", "checks": sorted(services.readiness)})


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    with contextlib.suppress(QueueUnavailable):
        await services.metrics.read_queue(services.queue)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log (by uvicorn), never into the response.
    log.error("internal_error", error_type=type(exc).__name__)
    return error_response(500, "internal_error", "unexpected error; see the service log")


def create_app(
    settings: Settings,
    *,
    queue: Queue | None = None,
    metrics_registry: Metrics | None = None,
    readiness: dict[str, ReadinessCheck] | None = None,
    background: Lifecycle | None = None,
    intake: bool = True,
) -> Starlette:
    """Build the ASGI app.

    `background` is entered for the app's lifetime once the queue is open
    (that is where the worker runs inside `serve`). Without `intake`, the app
    only answers health, readiness, metrics and status: what a worker-only
    replica offers its orchestrator.
    """
    queue = queue or queue_for(settings, store_wait=STORE_WAIT_SECONDS)
    checks: dict[str, ReadinessCheck] = {"queue": queue.ping, **(readiness or {})}
    services = Services(settings, queue, metrics_registry or Metrics(), checks)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await queue.open()
        try:
            if background is None:
                yield
            else:
                async with background(services):
                    yield
        finally:
            await queue.close()

    deliveries = [
        Route(
            "/iconik/custom-action",
            DeliveryEndpoint("custom_action", custom_action_intake(settings)),
            methods=["POST"],
        ),
        Route("/iconik/webhook", DeliveryEndpoint("webhook", accept_webhook), methods=["POST"]),
    ]
    app = Starlette(
        routes=[
            *(deliveries if intake else []),
            Route("/requests/{request_id}", request_status, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.services = services
    return app
