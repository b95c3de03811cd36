"""One way to wait for something in a test: poll it, with a bound."""

import time
from collections.abc import Callable
from typing import TypeVar

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
