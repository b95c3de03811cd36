"""The media's start timecode, as a time a caption file may count from. Pure.

Iconik gives an asset's start timecode as `HH:MM:SS:FF` (`;` before the
frames for drop frame) and its frame rate as a number or a fraction
("25", "29.97", "30000/1001"). A captioner who times cues from the
picture's timecode writes the timecode's own reading (10:00:05:00 as
10:00:05.000), so the offset is that reading: hours, minutes, seconds and
frames of the nominal rate (30 for 29.97, drop frame or not).
"""

from __future__ import annotations

import re

_TIMECODE = re.compile(r"\s*([0-9]{1,2}):([0-5][0-9]):([0-5][0-9])([:;.,])([0-9]{2,3})\s*")


def frame_rate(text: str | None) -> float | None:
    if not text:
        return None
    number, slash, divisor = str(text).strip().partition("/")
    try:
        rate = float(number) / (float(divisor) if slash else 1.0)
    except (ValueError, ZeroDivisionError):
        return None
    return rate if 1 <= rate <= 1000 else None


def start_offset(timecode: str | None, rate_text: str | None) -> tuple[int, str] | None:
    """(milliseconds, the timecode as given) of a start timecode past zero, or None."""
    if not timecode:
        return None
    match = _TIMECODE.fullmatch(str(timecode))
    if match is None:
        return None
    hours, minutes, seconds, _, frames = match.groups()
    rate = frame_rate(rate_text)
    frame_ms = 0
    if int(frames):
        if rate is None:
            return None  # frames of an unknown rate: no time
        nominal = round(rate)
        if int(frames) >= nominal:
            return None
        frame_ms = round(int(frames) * 1000 / nominal)
    ms = (int(hours) * 3600 + int(minutes) * 60 + int(seconds)) * 1000 + frame_ms
    return (ms, str(timecode).strip()) if ms > 0 else None
