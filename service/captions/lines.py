"""A delivered caption file as lines, and the times in one timing line. Pure.

The lines are decoded a window at a time, so a 20 MiB file is never one
string nor one list of every line (a file with one emoji in it would be a
string of four bytes a character).

Timing lines are read here, not by webvtt-py: the library reads times the
W3C parser refuses (`00:01.5`, vertical tabs as spaces), reads SubRip's
`00:00:01,5` as 1.005 s, and costs ~40 µs a cue; these readers follow the
WebVTT specification's "collect a WebVTT timestamp" exactly, and for SubRip
read what its tools write (a fraction of one, two or three digits is
tenths, hundredths or thousandths; `,` or `.`; hours of one digit).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Bytes decoded at a time (cut after a line break, so no character is split).
WINDOW_BYTES = 1 << 20

_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"

# Times are kept as 64-bit integers: past this an hour count is not a time.
MAX_MS = 10**15


class NotUtf8(Exception):
    """Bytes that are not UTF-8, at `line` (as the whole-file decode names it)."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


# -- lines -------------------------------------------------------------------


def iter_windows(data: bytes) -> Iterator[list[str]]:
    """`_LINE_BREAK.split(data.decode("utf-8-sig"))`, a window of lines at a time.

    Raises NotUtf8 with the line the whole-file decode names
    (`data[:error].count(b"\n") + 1`).
    """
    start = len(_BOM) if data.startswith(_BOM) else 0
    size = len(data)
    if start == size:
        yield [""]
        return
    while start < size:
        end = min(start + WINDOW_BYTES, size)
        if end < size:
            cut = max(data.rfind(b"\n", start, end), data.rfind(b"\r", start, end))
            if cut < 0:  # a line longer than a window: take it whole
                found = _LINE_BREAK_BYTES.search(data, end)
                cut = found.start() if found else size - 1
            end = cut + 1
            if data[cut : cut + 1] == b"\r" and data[end : end + 1] == b"\n":
                end += 1  # keep \r\n together
        try:
            text = data[start:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotUtf8(data[: start + exc.start].count(b"\n") + 1) from None
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")  # (str.splitlines also splits at \v, \f, U+2028...)
        del text
        if end < size:
            lines.pop()  # the "" after the window's last break: the next window goes on
        yield lines
        start = end


def iter_lines(data: bytes) -> Iterator[str]:
    for window in iter_windows(data):
        yield from window


# -- WebVTT timing lines -------------------------------------------------------

# WebVTT's whitespace within a line: space, tab, form feed (not \v, not U+00A0).
_WS = "[ \t\f]*"
_VTT_TIME = r"([0-9]+):([0-9]{2})(?![0-9])(?::([0-9]{2})(?![0-9]))?\.([0-9]{3})(?![0-9])"
_VTT_TIMING = re.compile(f"{_WS}{_VTT_TIME}{_WS}-->{_WS}{_VTT_TIME}(.*)", re.DOTALL)
# The line as a captioning tool writes it: taken as it is.
VTT_PLAIN = re.compile(
    r"([0-9]{2,7}):([0-5][0-9]):([0-5][0-9])\.([0-9]{3}) --> "
    r"([0-9]{2,7}):([0-5][0-9]):([0-5][0-9])\.([0-9]{3})"
)


def _vtt_ms(hours: str, minutes: str, seconds: str | None, millis: str) -> int | None:
    if seconds is None:  # mm:ss.ttt: the first part is minutes, two digits, < 60
        if len(hours) != 2 or int(hours) > 59:
            return None
        hours, minutes, seconds = "0", hours, minutes
    if int(minutes) > 59 or int(seconds) > 59:
        return None
    return int(hours) * 3_600_000 + int(minutes) * 60_000 + int(seconds) * 1000 + int(millis)


def _plain_ms(match: re.Match[str]) -> tuple[int, int]:
    h1, m1, s1, f1, h2, m2, s2, f2 = match.groups()
    return (
        int(h1) * 3_600_000 + int(m1) * 60_000 + int(s1) * 1000 + int(f1),
        int(h2) * 3_600_000 + int(m2) * 60_000 + int(s2) * 1000 + int(f2),
    )


def vtt_timing(line: str) -> tuple[int, int, str] | None:
    """(start, end, settings) as the W3C parser reads a timing line, or None."""
    plain = VTT_PLAIN.fullmatch(line)
    if plain is not None:
        return (*_plain_ms(plain), "")
    match = _VTT_TIMING.fullmatch(line)
    if match is None:
        return None
    h1, m1, s1, f1, h2, m2, s2, f2, rest = match.groups()
    start, end = _vtt_ms(h1, m1, s1, f1), _vtt_ms(h2, m2, s2, f2)
    if start is None or end is None or start > MAX_MS or end > MAX_MS:
        return None
    return start, end, rest.strip(" \t\f")  # (settings may follow with no space)


# -- SubRip timing lines -------------------------------------------------------

_SRT_TIME = r"([0-9]{1,3}):([0-9]{1,2}):([0-9]{1,2})(?:[,.]([0-9]{1,3}))?(?![0-9])"
_SRT_TIMING = re.compile(rf"\s*{_SRT_TIME}\s*-->\s*{_SRT_TIME}(.*)", re.DOTALL)
SRT_PLAIN = re.compile(
    r"([0-9]{2,7}):([0-5][0-9]):([0-5][0-9]),([0-9]{3}) --> "
    r"([0-9]{2,7}):([0-5][0-9]):([0-5][0-9]),([0-9]{3})"
)
_SCALE = {1: 100, 2: 10, 3: 1}  # tenths, hundredths, thousandths


def _srt_ms(hours: str, minutes: str, seconds: str, fraction: str | None) -> int | None:
    if int(minutes) > 59 or int(seconds) > 59:
        return None
    millis = int(fraction) * _SCALE[len(fraction)] if fraction else 0
    return int(hours) * 3_600_000 + int(minutes) * 60_000 + int(seconds) * 1000 + millis


def srt_timing(line: str) -> tuple[int, int, str] | None:
    """(start, end, what follows the end time) of a SubRip timing line, or None."""
    plain = SRT_PLAIN.fullmatch(line)
    if plain is not None:
        return (*_plain_ms(plain), "")
    match = _SRT_TIMING.fullmatch(line)
    if match is None:
        return None
    h1, m1, s1, f1, h2, m2, s2, f2, rest = match.groups()
    start, end = _srt_ms(h1, m1, s1, f1), _srt_ms(h2, m2, s2, f2)
    if start is None or end is None:
        return None
    if rest and not rest[0].isspace():
        return None
    return start, end, rest.strip()


def timestamp(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
