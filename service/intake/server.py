"""Running the ASGI apps under uvicorn: sockets, readiness, signals."""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import Callable, Iterator
from typing import Literal

import anyio
import uvicorn
from starlette.types import ASGIApp

from service.intake.edge import Edge, EdgeLimits
from service.intake.edge_protocol import EdgeProtocol
from service.logging import get_logger

log = get_logger("service.intake.server")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 lets the OS choose.

    Created as IPPROTO_TCP with TCP_NODELAY: asyncio only disables Nagle on
    accepted sockets whose protocol says TCP, and without it every response
    on a kept-alive connection waits ~40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def config(
    app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "on", limits: EdgeLimits | None = None
) -> uvicorn.Config:
    """uvicorn on httptools (uvloop when installed), guarded by service.intake.edge's limits.

    Every server of the project runs this way, the benchmarks' floor too,
    so that what the guard costs is inside the measurement.
    """
    limits = limits or EdgeLimits()
    return uvicorn.Config(
        app,
        # uvicorn types `http` as a protocol class (or its name); a partial of
        # one is called the same way, and carries the edge to each connection.
        http=functools.partial(EdgeProtocol, edge=Edge(limits)),  # type: ignore[arg-type]
        ws="none",  # nothing here speaks WebSocket: no upgrade path to guard
        # uvicorn types it int; it only passes it to loop.call_later, which takes a float.
        timeout_keep_alive=limits.keep_alive_timeout_seconds,  # type: ignore[arg-type]
        log_config=None,  # logging is ours (service.logging), JSON and redacted
        access_log=False,
        lifespan=lifespan,
        # SIGTERM: stop accepting, let in-flight requests finish, then exit.
        timeout_graceful_shutdown=30,
    )


def edge_of(cfg: uvicorn.Config) -> Edge:
    """The connections and limits of the server made from `cfg`."""
    # cfg.http is the partial `config` made (uvicorn types it as a class or a name).
    edge: Edge = cfg.http.keywords["edge"]  # type: ignore[union-attr]
    return edge


class Server(uvicorn.Server):
    """uvicorn, plus one log line with the real address once it accepts connections.

    With PORT=0 the OS picks the port; that line is how a supervisor (or a
    test) learns it without guessing. `on_ready` is called at the same moment.
    """

    def __init__(
        self,
        cfg: uvicorn.Config,
        sock: socket.socket,
        *,
        handle_signals: bool = True,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(cfg)
        self.sock = sock
        self.handle_signals = handle_signals
        self.on_ready = on_ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self.handle_signals:  # several servers in one process: the caller owns signals
            yield
            return
        # uvicorn re-raises SIGTERM/SIGINT once it has drained, so the process
        # dies "by signal" (exit 143 under Docker). A drain that completed is a
        # clean stop: forget the signal and exit 0. (Private attribute; the
        # SIGTERM test in tests/system/test_serve_process.py notices if it changes.)
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
            if self.started:
                host, port = self.sock.getsockname()[:2]
                edge = edge_of(self.config)
                log.info(
                    "service.listening",
                    host=host,
                    port=port,
                    url=f"http://{host}:{port}",
                    # At most three quarters of the file handle limit: the rest is the process's.
                    max_connections=edge.max_connections,
                )
        finally:
            if self.on_ready is not None:
                self.on_ready()

    def run_here(self) -> int:
        self.run(sockets=[self.sock])
        return 0 if self.started else 1

    async def serve_here(self) -> None:
        await self.serve(sockets=[self.sock])

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"


class AsyncReady:
    """An anyio.Event usable as `on_ready` (set from the server's own loop)."""

    def __init__(self) -> None:
        self.event = anyio.Event()

    def __call__(self) -> None:
        self.event.set()
