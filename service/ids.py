"""Identifiers for requests and tasks: unique, and in the order they were made.

32 hex digits, like `uuid4().hex`, so nothing that reads them changes: the
first 12 are the milliseconds since the epoch, the other 20 are random
(80 bits). Made in time order, new rows land at the end of the queue's
primary-key indexes instead of on a random page of each: under a burst,
a commit writes a few pages, not a few per delivery.
"""

from __future__ import annotations

import os
import time


def new_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
