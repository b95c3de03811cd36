"""Real servers for tests: uvicorn in a thread, or the CLI in a child process.

Both report readiness by an event (a threading.Event, or the service's own
`service.listening` log line), so no test sleeps to wait for a server.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from service.server import Server, bind
from service.server import config as server_config


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve `app` with real uvicorn on a free loopback port; yield its base URL."""
    ready = threading.Event()
    server = Server(
        server_config(app), bind("127.0.0.1", 0), handle_signals=False, on_ready=ready.set
    )
    thread = threading.Thread(target=server.run_here, daemon=True)
    thread.start()
    if not ready.wait(30) or not server.started:
        server.should_exit = True
        thread.join(10)
        raise RuntimeError("test server did not start")
    try:
        yield server.url
    finally:
        server.should_exit = True
        thread.join(30)
        server.sock.close()


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
