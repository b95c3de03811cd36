"""What the Iconik client raises, one class per thing an operator does about it.

The worker retries every `IconikError` and shows `str(exc)` as the reason in
`GET /requests/{id}`, so each message says what happened and what to check,
and never quotes a credential or a signed URL's query (its signature).
"""

from __future__ import annotations

from service.failures import TaskFailed


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


class UserTokenRefused(CredentialsRejected):
    """401 to a call made with the clicking user's token: expired or revoked."""


class NotPermitted(IconikError):
    """403 to a call made with the clicking user's token: that user may not read it."""


class UnusableId(TaskFailed, IconikError):
    """An id (from a payload or from Iconik) or a path that must not become part of a URL.

    A `TaskFailed`: retrying cannot make it usable, so the task fails at once
    with this reason. An `IconikError` too, so the best-effort callers that
    catch those (job reports) catch it as well.
    """


class UnusableUrl(TaskFailed, IconikError):
    """Iconik gave a download URL that is not http(s) to a host (file:, data:, a bare path)."""
