"""Identifiers for requests and tasks: unique, and in the order they were made.

32 hex digits, like `uuid4().hex`, so nothing that reads them changes: the
first 12 are the milliseconds since the epoch, the other 20 are random
(80 bits). Made in time order, new rows land at the end of the queue's
primary-key indexes instead of on a random page of each: under a burst,
a commit writes a few pages, not a few per delivery.
"""

from __future__ import annotations

import os
import random
import time

# Not os.urandom: that is a system call, which hands the GIL over, and on the
# request path every hand-over waits for the queue's writer thread. Ids need
# to be unique, not secret; each process seeds its own generator (a forked
# child reseeds, or parent and child would make the same ids).
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def new_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{_random.getrandbits(80):020x}"
