"""structlog configuration, in one place, with secret redaction.

Two layers keep secrets out of logs. The code never passes one to a logger
(the tests hold it to that with `structlog.testing.capture_logs`). And, in
case it ever does by mistake, the `Redactor` processor masks any value whose
key names a credential and any configured secret found inside a value, in
every event, including those that come from the standard library's loggers
(uvicorn's among them).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"

# Keys whose value is a credential whatever it looks like.
_SENSITIVE_KEY = re.compile(
    r"(token|authorization|signature|secret|password|bearer|credential|api[_-]?key)",
    re.IGNORECASE,
)


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
        for key in list(event):
            event[key] = self._clean(key, event[key])
        return event

    def _clean(self, key: object, value: Any) -> Any:
        if isinstance(key, str) and _SENSITIVE_KEY.search(key) and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, bytes):
            return self._clean(key, value.decode("utf-8", "replace"))
        if isinstance(value, dict):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(key, v) for v in value]
        return value


redactor = Redactor()


def configure(
    log_format: str = "json", secrets: Iterable[str] = (), level: int = logging.INFO
) -> None:
    """Set up structlog and route the standard library's logging through it."""
    redactor.set_secrets(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: tests swap processors with capture_logs at any time.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
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


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
