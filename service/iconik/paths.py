"""What the Iconik client will put in a URL: the last line of defence.

Every id reaches a path only through `checked_id` (service/ids.py says
which forms are Iconik ids), every API path is checked by `checked_path`
before it is sent (each segment a word, a language code or an id: no `.`,
`..`, `%`, whitespace or control character anywhere in it), and every URL
Iconik hands out for a download must be `checked_download_url`: http(s)
to a host. What fails is an `UnusableId` / `UnusableUrl`, a task failure
with a reason an operator can act on, and nothing is asked of Iconik.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from service.iconik.errors import UnusableId, UnusableUrl
from service.ids import describe, is_iconik_id

# A path segment: an API word ("assets", "v1", "webvtt"), an id, or a
# language code ("en", "pt-BR", "zh_Hant").
_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,128}")
_UNSAFE_IN_URL = re.compile(r"[\s\x00-\x1f\x7f#\\]")


def checked_id(value: object, what: str) -> str:
    """`value` if it is an Iconik id; else UnusableId naming `what`."""
    if not is_iconik_id(value):
        raise UnusableId(
            f"{what} is not an Iconik id (a UUID): {describe(value)}; refusing to put it in "
            "a URL, nothing was asked of Iconik"
        )
    assert isinstance(value, str)
    return value


def checked_path(path: str) -> str:
    """`path` (an `/API/...` path, with its query if any) if it is safe to send; else UnusableId."""
    if not isinstance(path, str):
        raise UnusableId("an Iconik API path must be a string")
    route, _, query = path.partition("?")
    segments = route.split("/")
    # "/API/x/v1/y/" splits into "", "API", ..., "" (a trailing slash) or a last word.
    inner = segments[1:-1] if segments[-1] == "" else segments[1:]
    if (
        segments[0] != ""
        or len(segments) < 3
        or segments[1] != "API"
        or not all(_SEGMENT.fullmatch(s) for s in inner)
        or _UNSAFE_IN_URL.search(query)
    ):
        raise UnusableId(
            "refusing to call Iconik at a path that is not an /API/ path made of words and "
            f"ids ({describe(route)}); nothing was asked of Iconik"
        )
    return path


def checked_download_url(url: object, what: str) -> str:
    """`url` if it is http(s) to a host; else UnusableUrl (never quoting the URL, which
    may carry a signature)."""
    if isinstance(url, str) and not _UNSAFE_IN_URL.search(url):
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:  # a malformed port or IPv6 literal
            parts, host = None, None
        if parts is not None and parts.scheme.lower() in ("http", "https") and host:
            return url
    raise UnusableUrl(f"Iconik gave an unusable download URL for {what} ({_scheme(url)})")


def _scheme(url: object) -> str:
    if not isinstance(url, str) or not url:
        return "no URL"
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,15}", scheme):
        if scheme.lower() in ("http", "https"):
            return f"an {scheme} URL without a usable host"
        return f"a {scheme}: URL; only http and https are fetched"
    return "not an absolute http(s) URL"
