"""Child processes for the benchmarks: started, found listening, stopped, measured.

Each child logs to a file, not a pipe: the benchmark process must not spend
a core reading the service's log lines, and a pipe nobody reads would
stall the service. Its port comes from its own `service.listening` line.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.service import BEARER, CURRENT_SECRET

# The children run in a scratch folder; they import `bench` and `tests` from here.
REPO = Path(__file__).resolve().parents[1]
AUTH_ENV = {"WEBHOOK_SECRETS": CURRENT_SECRET, "BEARER_TOKENS": BEARER, "LOG_FORMAT": "json"}


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0
    peak_rss_mb: float | None = None  # once stopped

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lines(self) -> Iterator[dict[str, Any]]:
        for raw in self.log.read_text(errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                yield line

    def wait_for(self, event: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if line.get("event") == event:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.process.args!r}: no {event!r}; log ends:\n{tail}")


@contextmanager
def child(
    args: Sequence[str],
    env: Mapping[str, str],
    workdir: Path,
    name: str,
    prefix: Sequence[str] = (),
) -> Iterator[Child]:
    """`python *args` with `env`, its log in `workdir/name.log`; SIGTERM, then SIGKILL.

    `prefix` is a command that execs the rest in its place (`prlimit ...`).
    """
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*prefix, sys.executable, *args],
            env={
                **os.environ,
                **env,
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(REPO)])),
            },
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    handle = Child(process, log)
    try:
        yield handle
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        handle.peak_rss_mb = _reap(process)  # wait4, not wait: it also gives the peak RSS


def _reap(process: subprocess.Popen[bytes]) -> float | None:
    """The child's peak RSS in MB, from wait4 (Linux reports kilobytes)."""
    deadline = time.monotonic() + 30
    try:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:  # a child that ignores SIGTERM
                process.kill()
                deadline = float("inf")
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
    except ChildProcessError:  # already reaped by Popen
        return None
    return usage.ru_maxrss / 1024


@contextmanager
def listening(
    args: Sequence[str],
    env: Mapping[str, str],
    workdir: Path,
    name: str,
    prefix: Sequence[str] = (),
) -> Iterator[Child]:
    with child(args, env, workdir, name, prefix) as handle:
        handle.port = int(handle.wait_for("service.listening")["port"])
        yield handle


def run_load(
    port: int, *, connections: int, seconds: float, warmup: float = 1.0, no_assets: bool = False
) -> dict[str, Any]:
    """bench.load against `port`, in a process of its own; its JSON summary."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load",
            f"--port={port}",
            f"--connections={connections}",
            f"--seconds={seconds}",
            f"--warmup={warmup}",
            f"--secret={CURRENT_SECRET}",
            f"--bearer={BEARER}",
            *(["--no-assets"] if no_assets else []),
        ],
        capture_output=True,
        cwd=REPO,
        check=True,
        text=True,
    )
    return json.loads(done.stdout)


def cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
