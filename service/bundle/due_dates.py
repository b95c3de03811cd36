"""A bundle's due date and the languages asked for, from the custom action's form. Pure.

The form's due date field (DUE_DATE_FIELD) is parsed once, when the build
writes the manifest: a date ("2026-12-01") means the end of that day in
DUE_DATE_ZONE; a date and time with its zone ("2026-12-01T15:00:00Z",
"...+02:00") is that moment (one without a zone is read in DUE_DATE_ZONE).
What is kept is the moment in DUE_DATE_ZONE, as ISO 8601 with its offset
(`due_date` in project.json's request), with a note saying how it was read
(`due_date_note`). A value that is not a date is left out with a note
saying so, never an error. README.txt, the preview page, `caption-bridge
status` and the due-date notifications all show that one value.

The languages asked for are the form's TARGET_LANGUAGES_FIELD values
("en", "pt-BR"; a drop-down's list, or text separated by commas), in
lower case, each once: a language is delivered when a caption file of it
(subtitles or closed captions) has gone back to Iconik from the bundle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# A language code as a caption file's name carries it (service/captions/track.py).
_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*$")
_MAX_TEXT = 64  # a due date is short; anything longer is not one


def is_language(value: object) -> bool:
    """Whether `value` has the shape of a language code ("en", "pt-BR")."""
    return isinstance(value, str) and _LANGUAGE.match(value) is not None


@dataclass(frozen=True)
class Due:
    """A due date as read from the form: the moment (`at`, in DUE_DATE_ZONE)
    or None, and a note on how it was read (or why it was left out)."""

    at: datetime | None
    note: str | None

    @property
    def iso(self) -> str | None:
        return self.at.isoformat() if self.at is not None else None


def zone(name: str) -> ZoneInfo:
    """DUE_DATE_ZONE's time zone ("UTC", "Europe/Paris"); ValueError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"{name[:40]!r} is not a time zone name such as UTC or Europe/Paris"
        ) from exc


def form_value(form: Any, field: str) -> Any:
    """The form's value of `field` (flattened: service/bundle.flatten_metadata)."""
    return form.get(field) if isinstance(form, Mapping) and field else None


def parse_due(value: Any, zone_name: str) -> Due:
    """The form's due date value as a moment in `zone_name`, or why not."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or value == "" or value == []:
        return Due(None, None)
    tz = zone(zone_name)
    shown = str(value)[:_MAX_TEXT] if isinstance(value, str | int | float) else "a value"
    not_a_date = Due(
        None,
        f"the due date {shown!r} is not a date (2026-12-01) or a date and time with its "
        "zone (2026-12-01T15:00:00Z): left out",
    )
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        return not_a_date
    text = value.strip()
    try:
        if len(text) == 10:  # YYYY-MM-DD
            day = date.fromisoformat(text)
            end = datetime.combine(day, time(23, 59, 59), tz)
            return Due(end, f"a date without a time: the end of that day in {zone_name}")
        moment = datetime.fromisoformat(text)
    except ValueError:
        return not_a_date
    if moment.tzinfo is None:
        return Due(
            moment.replace(tzinfo=tz, microsecond=0),
            f"a date and time without a zone: read in {zone_name}",
        )
    return Due(moment.astimezone(tz).replace(microsecond=0), None)


def due_of(form: Any, field: str, zone_name: str) -> Due:
    return parse_due(form_value(form, field), zone_name)


def languages_asked(form: Any, field: str) -> list[str]:
    """The languages the form asks for, in lower case, each once, in order."""
    value = form_value(form, field)
    items: Iterable[Any] = value if isinstance(value, list) else [value]
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            continue
        for part in re.split(r"[,;\s]+", item):
            code = part.strip().lower()
            if _LANGUAGE.fullmatch(code) and code not in found and len(found) < 100:
                found.append(code)
    return found


def missing(asked: list[str], delivered: Iterable[str]) -> list[str]:
    """The languages asked for that nothing was delivered in yet. None asked:
    the work is open until a first language is delivered ("*" stands for it)."""
    done = {d.lower() for d in delivered}
    if not asked:
        return [] if done else ["*"]
    return [language for language in asked if language not in done]


# -- how it reads ----------------------------------------------------------------


def read_iso(text: Any) -> datetime | None:
    """A due date as project.json keeps it (ISO 8601 with its offset), or None."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def describe(iso: Any, note: Any = None) -> str | None:
    """A due date for people: "1 December 2026, 23:59 (+01:00), the end of that
    day in Europe/Paris"; None when there is none."""
    moment = read_iso(iso)
    if moment is None:
        return None
    offset = moment.strftime("%z")
    offset = "UTC" if offset in ("+0000", "") else f"UTC{offset[:3]}:{offset[3:]}"
    text = f"{moment.day} {moment.strftime('%B %Y')}, {moment.strftime('%H:%M')} {offset}"
    if isinstance(note, str) and note and len(note) <= 200:
        text += f" ({note})"
    return text


def until(due_at: float, now: float) -> str:
    """ "OVERDUE by 2 d 3 h" or "due in 5 h" (to the minute when under an hour)."""
    seconds = due_at - now
    span = _span(abs(seconds))
    return f"OVERDUE by {span}" if seconds < 0 else f"due in {span}"


def _span(seconds: float) -> str:
    left = timedelta(seconds=int(seconds))
    days, hours, minutes = left.days, left.seconds // 3600, left.seconds // 60 % 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes and hours < 6 else f"{hours} h"
    return f"{max(1, minutes)} min"


def iso_utc(due_at: float) -> str:
    """The moment as one canonical text (for event ids): 2026-12-01T22:59:59Z."""
    return datetime.fromtimestamp(due_at, UTC).isoformat().replace("+00:00", "Z")
