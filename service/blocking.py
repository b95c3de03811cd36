"""Blocking work in a thread of its own, which a cancelled caller stops and waits for.

A download's body is received, hashed and written by one thread with
blocking calls (service/iconik/transfer.py, service/storage/local_staging.py): per chunk,
the event loop is handed nothing, so requests are answered while proxies
are copied. anyio's `to_thread.run_sync` cannot serve: cancelled, it either
waits for the work however long it takes, or abandons a thread that goes on
writing into a staging folder being removed. Here the caller's cancellation
first calls `stop` (which must make the work return soon, e.g. by shutting
its socket), then waits for the thread to end, then is raised.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")

# Copies yield the CPU to the event loop's thread (which answers requests in
# milliseconds) whenever both want it; on an idle machine they still get a
# whole core. Linux applies a nice value to the one thread setpriority names.
COPY_NICENESS = 5


class _Outcome(Generic[T]):
    def __init__(self) -> None:
        self.value: T | None = None
        self.error: BaseException | None = None


async def run_stoppable(
    work: Callable[[], T], stop: Callable[[], None], *, name: str, niceness: int = 0
) -> T:
    """`work()` in a new thread named `name`; its value, or its exception, is ours.

    Cancelled, we call `stop()` (from the event loop; it must be thread-safe),
    wait for `work` to return and raise the cancellation, never its outcome:
    once this returns, the thread has ended and writes nothing more.
    """
    token = anyio.lowlevel.current_token()
    finished = anyio.Event()
    outcome: _Outcome[T] = _Outcome()

    def run() -> None:
        if niceness:
            with contextlib.suppress(OSError):  # not Linux, or not allowed: full speed
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        try:
            outcome.value = work()
        except BaseException as exc:
            outcome.error = exc
        finally:
            with contextlib.suppress(RuntimeError):  # the event loop has already ended
                anyio.from_thread.run_sync(finished.set, token=token)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        await finished.wait()
    except BaseException:
        stop()
        with anyio.CancelScope(shield=True):
            await finished.wait()
        raise
    finally:
        # `finished` is set by the thread's last statement: this waits for
        # microseconds, and then the thread is gone.
        thread.join()
    if outcome.error is not None:
        raise outcome.error
    # No error: work() returned, and `value` is what it returned (a T, None only if T allows).
    return outcome.value  # type: ignore[return-value]
