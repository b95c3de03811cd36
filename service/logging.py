"""structlog configuration, in one place, with secret redaction.

Two layers keep secrets out of logs. The code never passes one to a logger
(the tests hold it to that with `structlog.testing.capture_logs`). And, in
case it ever does by mistake, the `Redactor` processor masks any value whose
key names a credential and any configured secret found inside a value, in
every event, including those that come from the standard library's loggers
(uvicorn's among them).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"

# Keys whose value is a credential whatever it looks like.
_SENSITIVE_KEY = re.compile(
    r"(token|authorization|signature|secret|password|bearer|credential|api[_-]?key)",
    re.IGNORECASE,
)


# Values `_clean` returns unchanged under a key that names no credential.
_SCALARS = frozenset({bool, int, float})


class Redactor:
    """A structlog processor that masks credentials in an event dict."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = ()
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is masked whole.
        # Very short values would mask innocent text and are refused by no one
        # else, so anything under 4 characters is masked only by key.
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        # What `_clean` does for every key, with its common cases inline: it
        # runs for every key of every line (a dozen per delivery).
        secrets = self.secrets
        for key, value in event.items():  # replacing values keeps the dict's size
            if value is None:
                continue
            if isinstance(key, str) and _is_sensitive(key):
                event[key] = self._clean(key, value)
            elif type(value) is str:
                for secret in secrets:
                    if secret in value:
                        value = value.replace(secret, REDACTED)
                event[key] = value
            elif type(value) not in _SCALARS:
                event[key] = self._clean(key, value)
        return event

    def mask(self, text: str) -> str:
        """`text` with every configured secret in it masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def _clean(self, key: object, value: Any) -> Any:
        if isinstance(key, str) and _is_sensitive(key) and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, bytes):
            return self._clean(key, value.decode("utf-8", "replace"))
        if isinstance(value, dict):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(key, v) for v in value]
        return value


# Whether a key names a credential, by key: every log line runs every key
# through the pattern, and the keys are few and always the same.
_SENSITIVITY: dict[str, bool] = {}


def _is_sensitive(key: str) -> bool:
    known = _SENSITIVITY.get(key)
    if known is None:
        known = _SENSITIVE_KEY.search(key) is not None
        if len(_SENSITIVITY) < 4096:  # keys that come from data must not grow it forever
            _SENSITIVITY[key] = known
    return known


redactor = Redactor()


def redact(text: str) -> str:
    """`text` with every configured secret masked, as a log line would have it.

    For every text the service writes where someone else reads it (ERRORS.txt,
    RECEIPT.json, project.json, Iconik job messages, status answers): an
    error from Iconik or a gateway may echo a credential back.
    """
    return redactor.mask(text)


def redact_all(value: Any) -> Any:
    """`value` (JSON-like: dicts, lists, strings) with `redact` applied to every string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_all(v) for v in value]
    return value


def configure(
    log_format: str = "json", secrets: Iterable[str] = (), level: int = logging.INFO
) -> None:
    """Set up structlog and route the standard library's logging through it."""
    redactor.set_secrets(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # The service's own lines skip the standard library's logging machinery
    # (LogRecord, findCaller, handler locks, a formatter): one line per
    # delivery costs ~90 us through it and ~15 us straight to the stream,
    # which at thousands of deliveries a second is most of the budget.
    # Libraries' lines (uvicorn, boto) still come through the handler below,
    # rendered by the same processors.
    structlog.configure(
        processors=[_logger_name, *shared, renderer],
        logger_factory=_stderr_logger,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Not cached: tests swap processors with capture_logs at any time.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # boto and friends are chatty at INFO and may echo request details.
    for name in ("botocore", "boto3", "urllib3", "httpx2", "httpcore2", "s3transfer"):
        logging.getLogger(name).setLevel(logging.WARNING)


class _StderrLogger:
    """Writes each rendered line to whatever sys.stderr is now (tests swap it).

    Lines logged on an event loop's thread are written together once per
    turn of that loop, not one write(2) each: under a burst of deliveries a
    turn completes dozens of them, and every system call hands the GIL over
    (to the queue's writer thread, say) and waits to get it back. A line
    waits at most until the loop's next turn; lines from other threads, and
    from code outside a loop, are written at once.
    """

    def __init__(self) -> None:
        self._pending = threading.local()

    def msg(self, message: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _write(message + "\n")
            return
        lines: list[str] | None = getattr(self._pending, "lines", None)
        if lines is None:
            lines = self._pending.lines = []
        lines.append(message)
        if len(lines) == 1:
            loop.call_soon(self._flush, lines)
        elif len(lines) >= _MAX_PENDING_LINES:
            self._flush(lines)

    def _flush(self, lines: list[str]) -> None:
        if lines:
            text = "\n".join(lines) + "\n"
            lines.clear()
            _write(text)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


# A turn of the loop that logs more than this writes them out part-way.
_MAX_PENDING_LINES = 256


def _write(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (ValueError, OSError):
        pass  # a closed or broken stream must never fail a request; logging never did


_STDERR_LOGGER = _StderrLogger()


def _stderr_logger(*args: Any) -> _StderrLogger:
    return _STDERR_LOGGER


def _logger_name(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    """`logger`: the name given to get_logger (structlog reserves that keyword)."""
    name = event.pop("logger_name", None)
    if name is not None:
        event.setdefault("logger", name)
    return event


def get_logger(name: str) -> Any:
    return structlog.get_logger(logger_name=name)
