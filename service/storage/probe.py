"""Write probes: does a folder really take a write right now?

Permission bits, read-only mounts and full disks only show when something is
written, so readiness writes: a small file, fsync'd (a network or
delayed-allocation file system may report a full disk only there), then
removed. Used by the queue's and the local storage's `ping`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

# Less free space than this counts as a full disk: it is room for a handful
# of deliveries' WAL frames, far less than one bundle's media.
PROBE_BYTES = 64 * 1024


def write_file(path: Path, size: int = PROBE_BYTES) -> None:
    """Create `path` (it must not exist), write `size` bytes, fsync; OSError if not.

    A failed probe removes what it created; a written one is left for the
    caller, who may still need it (the storage probe renames it).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        data = memoryview(bytes(size))  # real bytes, not a hole: they take space
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)


def reason(exc: OSError) -> str:
    """'Permission denied (EACCES)': the words and the name an operator searches for."""
    text = exc.strerror or str(exc)
    name = errno.errorcode.get(exc.errno) if exc.errno is not None else None
    return f"{text} ({name})" if name else text
