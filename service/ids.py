"""Identifiers: the ones we make (requests, tasks) and Iconik's, checked before use.

Ours: 32 hex digits, like `uuid4().hex`, so nothing that reads them changes:
the first 12 are the milliseconds since the epoch, the other 20 are random
(80 bits). Made in time order, new rows land at the end of the queue's
primary-key indexes instead of on a random page of each: under a burst,
a commit writes a few pages, not a few per delivery.

Iconik's: every asset, collection, saved search, proxy, file, format,
subtitle and job id is a UUID. The one form accepted is the canonical one,
8-4-4-4-12 hex digits with hyphens, in either case (Iconik writes them in
lower case; `iconik_id` gives them back that way), and nothing else: no
braces, no `urn:uuid:`, no missing hyphens, no whitespace or newline before
or after. An id is the only thing from a payload or from Iconik that
becomes a segment of an Iconik path, so this check is what keeps `../`,
`%2e%2e`, `?`, `#` or a line break out of every URL the service builds.
"""

from __future__ import annotations

import os
import random
import re
import time

# Not os.urandom: that is a system call, which hands the GIL over, and on the
# request path every hand-over waits for the queue's writer thread. Ids need
# to be unique, not secret; each process seeds its own generator (a forked
# child reseeds, or parent and child would make the same ids).
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)

_HEX_GROUPS = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# For pydantic (Rust regex, where `$` is the end of the text).
ICONIK_ID_PATTERN = f"^{_HEX_GROUPS}$"
# fullmatch, never Python's `$`, which also matches before a final newline.
_ICONIK_ID = re.compile(_HEX_GROUPS)


def new_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{_random.getrandbits(80):020x}"


def is_iconik_id(value: object) -> bool:
    """True for an Iconik id in its canonical form (a hyphenated UUID, either case)."""
    return isinstance(value, str) and _ICONIK_ID.fullmatch(value) is not None


def iconik_id(value: object, what: str) -> str:
    """`value` as an Iconik id in lower case, or ValueError naming `what`."""
    if not is_iconik_id(value):
        raise ValueError(f"{what} is not an Iconik id (a UUID): {describe(value)}")
    assert isinstance(value, str)
    return value.lower()


def describe(value: object) -> str:
    """What is wrong with a rejected id, without quoting it: it came from
    outside, and may be long, hold control characters, or be a secret pasted
    into the wrong field. Safe for a log line or an error body."""
    if not isinstance(value, str):
        return f"a {type(value).__name__}, not a string"
    if not value:
        return "empty"
    traits = [f"{len(value)} characters"]
    if value != value.strip():
        traits.append("whitespace or a line break around it")
    elif any(ch.isspace() or not ch.isprintable() for ch in value):
        traits.append("whitespace or control characters in it")
    if "/" in value or "\\" in value:
        traits.append("a path separator")
    if "." in value or "%" in value:
        traits.append("'.' or '%'")
    return ", ".join(traits)
