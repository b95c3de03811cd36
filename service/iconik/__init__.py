"""The Iconik client: every request the service makes to Iconik.

`client.IconikClient` is the surface (its calls grouped by what the work
needs in `endpoints`, the search in `search`); `transport` sends one
request, retried and paced, and `transfer` carries it hop by hop, so
credentials go to Iconik's origin only; `ratelimit`
keeps the deployment under Iconik's limit; `paths` checks what goes into a
URL; `errors` says what failed in terms an operator acts on; `user_token`
seals the clicking user's token while it waits in the queue.
"""

from service.iconik.client import IconikClient
from service.iconik.errors import (
    BadResponse,
    CredentialsRejected,
    DownloadInterrupted,
    IconikError,
    IconikUnavailable,
    NotFound,
    NotPermitted,
    SignedUrlRefused,
    UnusableId,
    UnusableUrl,
    UserTokenRefused,
)

__all__ = [
    "BadResponse",
    "CredentialsRejected",
    "DownloadInterrupted",
    "IconikClient",
    "IconikError",
    "IconikUnavailable",
    "NotFound",
    "NotPermitted",
    "SignedUrlRefused",
    "UnusableId",
    "UnusableUrl",
    "UserTokenRefused",
]
