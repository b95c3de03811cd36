"""What the preview page shows, worked out from the manifest. Pure.

service/bundle/preview.py lays the page out; this module decides what is on it:
the asset's timecode (start timecode and frame rate, drop-frame or not),
the brief with each field's label instead of its key, the due date, and
the delivery state of each language.

Everything read here may come from a project.json a captioner edited
(service/bundle/readback.py keeps only the shapes the service writes, but not
every value in them), so nothing is assumed of a value's type: what does
not have the expected shape is left out, never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from service.bundle import due_dates
from service.bundle.manifest import caption_label
from service.bundle.outtray import trusted_caption_deliveries
from service.captions import track as captions

# -- timecode ------------------------------------------------------------------

_TIMECODE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


@dataclass(frozen=True)
class FrameRate:
    """A video frame rate: exact (30000/1001 for 29.97), with how timecode counts it."""

    rate: Fraction
    nominal: int  # frames in a timecode second: 30 for 29.97
    drop_frame: bool  # 29.97 and 59.94: frame numbers 00 and 01 (00-03) skipped most minutes

    @property
    def dropped_per_minute(self) -> int:
        return self.nominal // 15 if self.drop_frame else 0

    @property
    def label(self) -> str:
        shown = f"{float(self.rate):.3f}".rstrip("0").rstrip(".")
        return f"{shown} fps{' drop-frame' if self.drop_frame else ''}"

    def for_page(self) -> dict[str, Any]:
        return {
            "numerator": self.rate.numerator,
            "denominator": self.rate.denominator,
            "nominal": self.nominal,
            "drop": self.dropped_per_minute,
            "label": self.label,
        }


def parse_frame_rate(text: Any) -> FrameRate | None:
    """Iconik's frame rate ("25", "29.97", "30000/1001"), or None when it is not one."""
    if not isinstance(text, str | int | float) or isinstance(text, bool):
        return None
    try:
        if isinstance(text, str) and "/" in text:
            top, bottom = text.split("/", 1)
            rate = Fraction(int(top.strip()), int(bottom.strip()))
        else:
            value = float(text)
            if abs(value - round(value)) < 0.005:
                rate = Fraction(round(value))
            elif abs(value * 1.001 - round(value * 1.001)) < 0.01:
                # 23.976, 29.97, 59.94: the NTSC rates, N * 1000/1001 exactly
                rate = Fraction(round(value * 1.001) * 1000, 1001)
            else:
                rate = Fraction(value).limit_denominator(1001)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    if not 1 <= rate <= 300:
        return None
    nominal = round(rate)
    drop = rate.denominator == 1001 and nominal in (30, 60)
    return FrameRate(rate, nominal, drop)


def timecode_frames(text: Any, rate: FrameRate) -> int | None:
    """The frame number a timecode ("10:00:00:00", "10:00:00;00") names, counted from 0."""
    match = _TIMECODE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    hours, minutes, seconds, _, frames = (match[1], match[2], match[3], match[4], match[5])
    h, m, s, f = int(hours), int(minutes), int(seconds), int(frames)
    if m >= 60 or s >= 60 or f >= rate.nominal:
        return None
    total_minutes = h * 60 + m
    count = (total_minutes * 60 + s) * rate.nominal + f
    return count - rate.dropped_per_minute * (total_minutes - total_minutes // 10)


def format_frames(frame: int, rate: FrameRate) -> str:
    """A frame number as timecode, HH:MM:SS:FF (HH:MM:SS;FF drop-frame); wraps at 24 h.

    The page's script does the same for each cue (keep the two alike).
    """
    nominal, drop = rate.nominal, rate.dropped_per_minute
    if drop:
        per_ten_minutes = nominal * 600 - drop * 9
        per_minute = nominal * 60 - drop
        tens, rest = divmod(frame, per_ten_minutes)
        frame += drop * 9 * tens + (drop * ((rest - drop) // per_minute) if rest > drop else 0)
    ff = frame % nominal
    seconds = frame // nominal
    separator = ";" if drop else ":"
    return (
        f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{separator}{ff:02d}"
    )


def media_frame(seconds: float, rate: FrameRate) -> int:
    """The frame nearest a time in the media, from its whole milliseconds (as cue
    times are written), halves up: exact in integers, as the page's script does."""
    ms = round(seconds * 1000)
    return (ms * rate.rate.numerator * 2 + 1000 * rate.rate.denominator) // (
        2000 * rate.rate.denominator
    )


def timing(asset: dict[str, Any]) -> dict[str, Any] | None:
    """The page's timecode settings, or None when the frame rate is unknown
    (the page then shows media time only)."""
    rate = parse_frame_rate(asset.get("frame_rate"))
    if rate is None:
        return None
    start = timecode_frames(asset.get("start_timecode"), rate)
    return {
        **rate.for_page(),
        "start_frame": start or 0,
        "start": format_frames(start or 0, rate),
        "start_known": start is not None,
    }


# -- the brief -----------------------------------------------------------------


def labels_of(definition: Any) -> dict[str, str]:
    """{field name: label} from a metadata view's definition (`view_fields`)."""
    fields = definition.get("view_fields") if isinstance(definition, dict) else None
    labels: dict[str, str] = {}
    for item in fields if isinstance(fields, list) else []:
        if not isinstance(item, dict):
            continue
        name, label = item.get("name"), item.get("label")
        if isinstance(name, str) and isinstance(label, str) and label.strip():
            labels[name] = label.strip()
    return labels


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def display(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(display(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {display(v)}" for k, v in value.items())
    return "" if value is None else str(value)


def labelled(values: Any, labels: Any, leave_out: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(label, value) for each field with a value: the label from the view's
    definition, else the field's own name."""
    names = _labels(labels)
    if not isinstance(values, dict):
        return []
    return [
        (names.get(str(key), str(key)), display(value))
        for key, value in values.items()
        if key not in leave_out and value not in (None, "", [], {})
    ]


def due_date(request: dict[str, Any], field: str) -> str | None:
    """The due date as the build read it (service/bundle/due_dates.py: "1 December
    2026, 23:59 UTC (the end of that day in UTC)"); in a manifest from before
    that, or when it was not a date, the form's value as it was entered."""
    described = due_dates.describe(request.get("due_date"), request.get("due_date_note"))
    if described:
        return described
    form = request.get("form_values")
    value = form.get(field) if isinstance(form, dict) and field else None
    shown = display(value).strip()
    note = request.get("due_date_note")
    if shown and isinstance(note, str) and 0 < len(note) <= 200:
        return f"{shown} ({note})"
    return shown or None


# -- deliveries ----------------------------------------------------------------

# One line of ERRORS.txt about a file: "<name>[, line N]: <reason>" (outtray.Problem).
_ERROR_LINE = re.compile(r"^(?P<file>[^\s,:][^,:]*?)(?:, line (?P<line>\d+))?: (?P<reason>.+)$")


def _track_of(filename: str) -> tuple[str, bool] | None:
    try:
        name = captions.parse_name(filename)
    except captions.Refused:
        return None
    return name.language.lower(), name.closed_captions


def refusals(errors_text: str | None) -> dict[tuple[str, bool], list[str]]:
    """ERRORS.txt's lines about caption files, by the track each file's name asks for."""
    found: dict[tuple[str, bool], list[str]] = {}
    for line in (errors_text or "").splitlines():
        match = _ERROR_LINE.match(line)
        track = _track_of(match["file"]) if match else None
        if track is not None:
            found.setdefault(track, []).append(line)
    return found


def caption_delivery_states(
    manifest: dict[str, Any], errors_text: str | None
) -> list[dict[str, str]]:
    """Each language's state, as of this page: the bundle's tracks and every
    language delivered or refused, each once.

    `delivered` (the last delivery, from project.json's `deliveries`, as
    RECEIPT.json lists them), `refused` (ERRORS.txt names a file of it: the
    newest attempt did not go), or `waiting` (nothing delivered yet).
    """
    tracks: dict[tuple[str, bool], str] = {}

    def note(language: Any, closed_captions: Any) -> tuple[str, bool] | None:
        if not isinstance(language, str) or not language:
            return None
        key = (language.lower(), bool(closed_captions))
        tracks.setdefault(key, caption_label(language, bool(closed_captions)))
        return key

    files = manifest.get("files")
    for entry in files if isinstance(files, list) else []:
        if isinstance(entry, dict) and entry.get("kind") == "caption":
            note(entry.get("language"), entry.get("closed_captions"))
    last: dict[tuple[str, bool], dict[str, Any]] = {}
    for entry in trusted_caption_deliveries(manifest.get("deliveries")):
        key = note(entry["language"], entry.get("closed_captions"))
        if key is not None:
            last[key] = entry
    refused = refusals(errors_text)
    for language, closed_captions in refused:
        note(language, closed_captions)

    states = []
    for key, label in sorted(tracks.items()):
        delivered = last.get(key)
        done = (
            f"delivered {display(delivered.get('delivered_at'))} from {delivered['path']}"
            if delivered
            else ""
        )
        if key in refused:
            detail = "; ".join(refused[key]) + (f" (last {done})" if done else "")
            states.append({"label": label, "state": "refused", "detail": detail})
        elif delivered:
            detail = done[0].upper() + done[1:]
            states.append({"label": label, "state": "delivered", "detail": detail})
        else:
            states.append({"label": label, "state": "waiting", "detail": "Nothing delivered yet"})
    return states
