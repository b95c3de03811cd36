"""What the Iconik client raises, one class per thing an operator does about it.

The worker retries every `IconikError` and shows `str(exc)` as the reason in
`GET /requests/{id}`, so each message says what happened and what to check,
and never quotes a credential or a signed URL's query (its signature).
"""

from __future__ import annotations


class IconikError(Exception):
    """Base of everything this client raises."""


class CredentialsRejected(IconikError):
    """401/403: the application token is wrong, expired, or lacks a role."""


class NotFound(IconikError):
    """404: the object is gone (deleted asset, removed proxy, ...)."""


class IconikUnavailable(IconikError):
    """Iconik kept failing (429/5xx/network) after every retry; try the task later."""


class BadResponse(IconikError):
    """Iconik answered something the client cannot use."""


class SignedUrlRefused(IconikError):
    """A signed storage URL answered 4xx: expired, revoked, or the object moved.

    Not the application token's fault, and not "gone from Iconik": the task
    is retried and asks Iconik for a fresh URL.
    """


class DownloadInterrupted(IconikError):
    """The body stopped part-way (connection lost, short body, read timeout); retry."""
