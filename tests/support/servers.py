"""Real servers for tests: uvicorn in a thread, or the CLI in a child process.

Both report readiness by an event (a threading.Event, or the service's own
`service.listening` log line), so no test sleeps to wait for a server.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from service.intake.server import Server, bind
from service.intake.server import config as server_config


@contextmanager
def running(app: Any, limits: Any = None) -> Iterator[str]:
    """Serve `app` with real uvicorn on a free loopback port; yield its base URL.

    `limits` (service.intake.edge.EdgeLimits) replaces the default limits at the edge.
    """
    with running_server(app, limits) as server:
        yield server.url


@contextmanager
def running_server(app: Any, limits: Any = None) -> Iterator[Server]:
    """`running`, yielding the server itself (its `.url`, `.config`)."""
    ready = threading.Event()
    server = Server(
        server_config(app, limits=limits),
        bind("127.0.0.1", 0),
        handle_signals=False,
        on_ready=ready.set,
    )
    thread = threading.Thread(target=server.run_here, daemon=True)
    thread.start()
    if not ready.wait(30) or not server.started:
        server.should_exit = True
        thread.join(10)
        raise RuntimeError("test server did not start")
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(30)
        server.sock.close()


@contextmanager
def raw_tcp(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """A bare TCP server on loopback; each connection goes to `handle` in a thread.

    For answers no HTTP framework will give: a body cut short, headers and
    then silence. Listening starts before the URL is yielded, so a client
    can connect at once.
    """

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            handle(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # The poll interval only bounds how long shutdown() waits at teardown.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def read_request_head(sock: socket.socket) -> bytes:
    """Read an HTTP request up to the blank line after its headers."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(65536)
        if not data:
            break
        head += data
    return head


@dataclass
class ServiceProcess:
    """`python -m service <command>` as a child process, its log lines parsed."""

    process: subprocess.Popen[str]
    lines: queue.Queue[dict[str, Any] | str] = field(default_factory=queue.Queue)
    seen: list[dict[str, Any] | str] = field(default_factory=list)

    def wait_for(self, event: str, timeout: float = 30) -> dict[str, Any]:
        """Block until the child logs `event`; fail if it exits first."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no {event!r} within {timeout}s; saw {self.seen[-20:]}"
                ) from None
            if line is None:
                raise AssertionError(f"process exited before {event!r}; saw {self.seen[-20:]}")
            self.seen.append(line)
            if isinstance(line, dict) and line.get("event") == event:
                return line


@contextmanager
def service_process(
    *args: str,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str],
    prefix: Sequence[str] = (),
) -> Iterator[ServiceProcess]:
    """`python -m service *args`, run through `prefix` (e.g. a command that drops privileges).

    The prefix must exec the service in its own place (as `setpriv` does), so
    that killing the process kills the service.
    """
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "service", *args],
        env=full_env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    handle = ServiceProcess(process)

    def pump() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            try:
                handle.lines.put(json.loads(raw))
            except json.JSONDecodeError:
                handle.lines.put(raw.rstrip("\n"))
        handle.lines.put(None)  # type: ignore[arg-type]

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield handle
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def service_env(settings: Any, storage: Any, **extra: str) -> dict[str, str]:
    """The environment a child `python -m service` needs to run like `settings`."""
    from tests.support.service import BEARER, CURRENT_SECRET, ICONIK_TOKEN

    token = settings.iconik_auth_token
    return {
        "WEBHOOK_SECRETS": CURRENT_SECRET,
        "BEARER_TOKENS": BEARER,
        "ICONIK_URL": settings.iconik_url,
        "ICONIK_APP_ID": settings.iconik_app_id or "",
        "ICONIK_AUTH_TOKEN": token.get_secret_value() if token else ICONIK_TOKEN,
        "QUEUE_URL": settings.queue_url,
        "STORAGE_URL": str(storage),
        "METADATA_VIEW_IDS": ",".join(settings.metadata_view_ids),
        "LOG_FORMAT": "json",
        **extra,
    }
