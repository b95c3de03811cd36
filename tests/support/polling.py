"""One way to wait for something in a test: poll it, with a bound.

`until` for a test's own thread; `until_async` the same for a test on an
event loop, where what it waits for runs on that loop too (a sleeping
thread would stop it).
"""

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def until(
    check: Callable[[], T],
    within: float = 60,
    every: float = 0.05,
    why: Callable[[], object] | str = "not within the time allowed",
) -> T:
    """Call `check` until it answers something true, and return that answer.

    Fails the test after `within` seconds, saying `why` (a string, or a
    callable whose answer tells what was still missing). A wait of `every`
    seconds between calls keeps a poll of another process's state cheap.
    """
    deadline = time.monotonic() + within
    while not (found := check()):
        assert time.monotonic() < deadline, why() if callable(why) else why
        time.sleep(every)
    return found


async def until_async(
    check: Callable[[], Awaitable[T]],
    within: float = 60,
    every: float = 0.05,
    why: Callable[[], object] | str = "not within the time allowed",
) -> T:
    """`until` for a check that is awaited: the loop runs on between calls."""
    deadline = time.monotonic() + within
    while not (found := await check()):
        assert time.monotonic() < deadline, why() if callable(why) else why
        await anyio.sleep(every)
    return found
