"""The HTTP face of the service: routes, lifespan, error handling.

The request path does four things and nothing else: read the body (bounded),
verify it, parse it, store it. It never talks to Iconik or to the bundle
storage, so a 202 goes out in milliseconds and Iconik's ~10 s deadline is
never at risk. Every answer, errors included, is JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service import auth, payloads
from service.ids import new_id
from service.logging import Redactor, get_logger
from service.metrics import CONTENT_TYPE_LATEST, Metrics
from service.queue import (
    EVENT,
    Delivery,
    Enqueued,
    NewTask,
    Queue,
    QueueFull,
    QueueUnavailable,
    queue_for,
)
from service.settings import Settings
from service.status import request_summary

log = get_logger("service.app")

# How long one SQLite statement on the request path waits for another
# writer's lock. An enqueue waits at most about twice this (opening a
# connection, then its write), which keeps a 503 well inside the 5 s that
# DESIGN.md promises (Iconik gives up after ~10 s). SQLiteQueue's own default
# (10 s) still serves the worker-only and `status` processes; PostgreSQL's
# statements time out after the same wait.
STORE_WAIT_SECONDS = 2.0

# `scheme://user:password@host`: the password part, should a store's URL
# ever appear in an error message.
_URL_PASSWORD = re.compile(r"(?<=://)([^/\s:@]+):[^/\s@]+@")

ReadinessCheck = Callable[[], Awaitable[None]]
Lifecycle = Callable[["Services"], contextlib.AbstractAsyncContextManager[None]]


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


class _Refusal(Exception):
    """An answer other than success, raised from inside a handler."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    too_large = _Refusal(
        413,
        "body_too_large",
        f"request body is larger than MAX_BODY_BYTES ({limit} bytes)",
        # The rest of the body stays unread, so this connection cannot be reused.
        headers={"Connection": "close"},
    )
    if declared is not None:
        if not declared.isdigit():
            raise _Refusal(400, "bad_request", "Content-Length is not a number")
        if int(declared) > limit:
            raise too_large
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise too_large
    return bytes(received)


def _authenticate(services: Services, route: str, body: bytes, request: Request) -> None:
    try:
        verified = auth.verify(body, request.scope["headers"], services.credentials)
    except auth.AuthError as exc:
        services.metrics.auth_failures.labels(route, exc.reason).inc()
        log.warning("delivery.unauthenticated", reason=exc.reason)
        raise _Refusal(
            401,
            "unauthenticated",
            "send X-Iconik-Signature (HMAC-SHA256 of the body with a WEBHOOK_SECRETS key) "
            "or Authorization: Bearer <one of BEARER_TOKENS>",
        ) from None
    structlog.contextvars.bind_contextvars(auth=verified.method)


async def _store(services: Services, delivery: Delivery, request_id: str) -> Enqueued:
    try:
        enqueued = await services.queue.enqueue(delivery, request_id)
    except QueueFull as exc:
        setting, limit = (
            ("EVENTS_MAX_BACKLOG", services.settings.events_max_backlog)
            if exc.lane == EVENT
            else ("QUEUE_MAX_BACKLOG", services.settings.queue_max_backlog)
        )
        raise _Refusal(
            429,
            "queue_full",
            f"more than {setting} ({limit}) tasks are waiting; retry later",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    except QueueUnavailable as exc:
        log.error("delivery.not_stored", error=str(exc))
        raise _Refusal(
            503, "store_unavailable", "the delivery could not be stored; retry later"
        ) from None
    if enqueued.ignored:
        log.info("delivery.ignored", reason="asset has no bundle and no task")
        return enqueued
    if enqueued.duplicate or enqueued.coalesced:
        structlog.contextvars.bind_contextvars(request_id=enqueued.request_id)
    log.info(
        "delivery.stored",
        duplicate=enqueued.duplicate,
        coalesced=enqueued.coalesced,
        task=delivery.first_task.kind,
    )
    return enqueued


def _delivery_handler(
    route: str, accept: Callable[[Services, bytes], Delivery | None]
) -> Callable[[Request], Awaitable[Response]]:
    """The shared shape of both POST endpoints: read, verify, parse, store."""

    async def handle(request: Request) -> Response:
        services: Services = request.app.state.services
        started = time.perf_counter()
        request_id = new_id()
        outcome = "error"
        services.metrics.in_flight.inc()
        with structlog.contextvars.bound_contextvars(request_id=request_id, route=route):
            try:
                body = await _read_body(request, services.settings.max_body_bytes)
                _authenticate(services, route, body, request)
                try:
                    delivery = accept(services, body)
                except payloads.PayloadError as exc:
                    log.warning("delivery.bad_payload", detail=str(exc))
                    raise _Refusal(400, "bad_payload", str(exc)) from None
                if delivery is None:
                    outcome = "ignored"
                    log.info("delivery.ignored")
                    return JSONResponse({"ignored": True}, status_code=200)
                enqueued = await _store(services, delivery, request_id)
                if enqueued.ignored:  # an event about an asset the service does not hold
                    outcome = "ignored"
                    return JSONResponse({"ignored": True}, status_code=200)
                answer: dict[str, Any] = {"request_id": enqueued.request_id, "status": "queued"}
                outcome = "queued"
                for flag in ("duplicate", "coalesced"):
                    if getattr(enqueued, flag):
                        answer[flag] = True
                        outcome = flag
                return JSONResponse(answer, status_code=202)
            except _Refusal as refusal:
                outcome = refusal.code
                return error_response(refusal.status, refusal.code, refusal.detail, refusal.headers)
            except ClientDisconnect:
                outcome = "client_disconnected"
                return error_response(400, "client_disconnected", "the body was not received")
            finally:
                services.metrics.in_flight.dec()
                services.metrics.delivered(route, outcome, time.perf_counter() - started)

    return handle


def _accept_custom_action(services: Services, body: bytes) -> Delivery:
    action = payloads.parse_custom_action(body)
    structlog.contextvars.bind_contextvars(context=action.context, action_id=action.action_id)
    # Iconik resends the identical body, so the body's hash identifies the delivery.
    return Delivery(
        key="custom_action:" + hashlib.sha256(body).hexdigest(),
        kind="custom_action",
        payload=payloads.storable(action),
        first_task=NewTask("expand"),
    )


def _accept_webhook(services: Services, body: bytes) -> Delivery | None:
    webhook = payloads.parse_webhook(body)
    structlog.contextvars.bind_contextvars(
        iconik_request_id=webhook.request_id,
        event_type=webhook.event_type,
        operation=webhook.operation,
        realm=webhook.realm,
    )
    action = webhook.action()
    if action is None:
        return None
    # Iconik's request_id names the API call that caused the event, and one
    # call can change many assets: only the raw body identifies a delivery.
    return Delivery(
        key="webhook:" + hashlib.sha256(body).hexdigest(),
        kind="webhook",
        payload=payloads.storable(webhook),
        first_task=NewTask(action.value, webhook.asset_id),
    )


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
        for lane, depth in (await services.queue.backlog_by_lane()).items():
            services.metrics.queue_depth.labels(lane).set(depth)
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
            _delivery_handler("custom_action", _accept_custom_action),
            methods=["POST"],
        ),
        Route("/iconik/webhook", _delivery_handler("webhook", _accept_webhook), methods=["POST"]),
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
