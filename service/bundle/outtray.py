"""The bundle's `deliver/` folder, the captioners' out-tray: what the service
writes there. Pure.

    deliver/
      README.txt     how to deliver (written with every build, and again when
                     the scan interval or the house style changes)
      RECEIPT.json   what reached Iconik, and when (written with each delivery)
      ERRORS.txt     each file's state, and every problem of each file not
                     delivered (kept current by the scan)
      REPORT.txt     the house-style findings of each file (kept current by the scan)

Everything else in the folder is the captioners'; the service reads it and
never writes, renames or deletes it.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service.captions import house_style
from service.captions.track import MAX_PROBLEMS, Refused
from service.logging import redact_all

FOLDER = "deliver"
README = "README.txt"
RECEIPT = "RECEIPT.json"
ERRORS = "ERRORS.txt"
REPORT = "REPORT.txt"
SERVICE_FILES = frozenset({README, RECEIPT, ERRORS, REPORT})
README_PATH = f"{FOLDER}/{README}"
RECEIPT_PATH = f"{FOLDER}/{RECEIPT}"
ERRORS_PATH = f"{FOLDER}/{ERRORS}"
REPORT_PATH = f"{FOLDER}/{REPORT}"

# How many earlier deliveries of one track (language and kind) RECEIPT.json
# and project.json keep beside its latest: the lists stay bounded however
# often a track is corrected.
HISTORY_PER_TRACK = 20


# What operating systems and editors leave in any folder they open: never
# the captioner's work, never worth a line in ERRORS.txt.
_LITTER = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})

# How many entries of one deliver/ folder a look takes in (name order); the
# rest get one line in ERRORS.txt. A folder of a million files must not make
# every scan a million reads.
MAX_ENTRIES = 200


def is_litter(name: str) -> bool:
    """Hidden files (.DS_Store, ._en.vtt, the service's own temporary files,
    an editor's swap file), Office lock files and Windows' thumbnails."""
    return name.startswith((".", "~$")) or name.lower() in _LITTER


def is_captioners(name: str) -> bool:
    """An entry the scan should say something about: not the service's own,
    not litter, not a beside-copy of README."""
    if name in SERVICE_FILES or is_litter(name):
        return False
    return not (name.startswith("README.iconik-r") and name.endswith(".txt"))


def shown(name: str) -> str:
    """A file name as ERRORS.txt prints it: every control or format character
    (newline, escape, bidi override...) written as an escape, so a name can
    never start a line of its own, colour a terminal or reorder the text."""
    out = []
    for ch in name:
        if ch == "\\" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


# What each kind of entry that is not a regular file gets in ERRORS.txt.
NOT_A_FILE = {
    "directory": "sub-folders are not delivered: put the caption file directly in deliver/",
    "symlink": "not a regular file (a link): put the caption file itself here, not a link to it",
}


def not_a_file(kind: str) -> str:
    return NOT_A_FILE.get(kind, f"not a regular file (a {kind}): put the caption file itself here")


def blocked(name: str, kind: str) -> str:
    """The line for something a captioner put where the service writes its own file."""
    what = "a folder" if kind == "directory" else f"a {kind}"
    return f"{what} named {name} is in the way of the service's own {name}: remove it"


def receipt_bytes(deliveries: list[dict[str, Any]]) -> bytes:
    text = json.dumps(redact_all({"deliveries": deliveries}), indent=2, ensure_ascii=False)
    return (text + "\n").encode()


def caption_delivery_entry(
    *,
    path: str,
    sha256: str,
    language: str,
    closed_captions: bool,
    subtitle_id: str,
    delivered_at: str,
    notes: Iterable[str] = (),
    house_style: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """One delivered file, as RECEIPT.json and project.json's `deliveries` list it.

    `notes`: what was changed on the way (captions.Track.notes), only when
    something was; `house_style`: the findings counted per rule, only when
    there are any.
    """
    entry: dict[str, Any] = {
        "path": path,
        "sha256": sha256,
        "language": language,
        "closed_captions": closed_captions,
        "subtitle_id": subtitle_id,
        "delivered_at": delivered_at,
    }
    if notes := list(notes):
        entry["notes"] = notes
    if house_style:
        entry["house_style"] = dict(house_style)
    return entry


def with_caption_delivery(
    deliveries: list[dict[str, Any]], entry: dict[str, Any]
) -> list[dict[str, Any]]:
    """`deliveries` with `entry` added last, keeping per track (language and
    kind) its latest entry and the HISTORY_PER_TRACK before it, in order: the
    list (and RECEIPT.json, and project.json) stays bounded however often a
    track is corrected."""
    wanted = [*deliveries, entry]
    kept: list[dict[str, Any]] = []
    seen: dict[tuple[str, bool], int] = {}
    for item in reversed(wanted):
        track = (str(item.get("language", "")).lower(), bool(item.get("closed_captions")))
        seen[track] = seen.get(track, 0) + 1
        if seen[track] <= HISTORY_PER_TRACK + 1:
            kept.append(item)
    return kept[::-1]


def latest_caption_delivery(
    deliveries: Iterable[dict[str, Any]], language: str, closed_captions: bool
) -> dict[str, Any] | None:
    """The delivery that made Iconik's track of this language and kind what it is."""
    found = None
    for entry in trusted_caption_deliveries(deliveries):
        if (entry["language"].lower(), bool(entry.get("closed_captions"))) == (
            language.lower(),
            closed_captions,
        ):
            found = entry
    return found


def delivered_as(
    deliveries: Iterable[dict[str, Any]], path: str, sha256: str
) -> dict[str, Any] | None:
    """The latest delivery of this content of this file, if it is still its track's."""
    for entry in reversed(trusted_caption_deliveries(deliveries)):
        if (entry["path"], entry["sha256"]) == (path, sha256):
            latest = latest_caption_delivery(
                deliveries, entry["language"], bool(entry.get("closed_captions"))
            )
            return entry if latest is entry else None
    return None


def trusted_caption_deliveries(deliveries: Any) -> list[dict[str, Any]]:
    """The entries of a `deliveries` list read back from project.json that
    have the shape the service writes (anyone may have edited the file)."""
    if not isinstance(deliveries, list):
        return []
    return [
        entry
        for entry in deliveries
        if isinstance(entry, dict)
        and all(isinstance(entry.get(k), str) for k in ("path", "sha256", "language"))
    ]


def entry_notes(entry: Mapping[str, Any]) -> list[str]:
    """An entry's notes as read back: short strings only, a few."""
    notes = entry.get("notes")
    if not isinstance(notes, list):
        return []
    return [n[:300] for n in notes[:10] if isinstance(n, str)]


@dataclass(frozen=True)
class Problem:
    """One line of ERRORS.txt: a file that is not delivered, where, and why."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f", line {self.line}" if self.line else ""
        return f"{shown(self.file)}{where}: {shown(self.reason)}"


@dataclass(frozen=True)
class State:
    """One file's line in ERRORS.txt's list of states: `en.vtt: waiting (...)`."""

    file: str
    words: str
    delivered: bool = False  # nothing to wait for and nothing to fix

    def __str__(self) -> str:
        return f"  {shown(self.file)}: {shown(self.words)}"


def problem_count(refusal: Refused) -> int:
    """How many problems a refusal found: `more` counts those past the first
    (service/captions/track.py), whether listed in `problems` or not."""
    return max(len(refusal.problems), refusal.more + 1)


def problems_of(file: str, refusal: Refused) -> list[Problem]:
    """Every problem a refusal lists, then one line counting those it does not."""
    listed = [Problem(file, line, reason) for line, reason in refusal.problems]
    unlisted = problem_count(refusal) - len(refusal.problems)
    if unlisted:
        listed.append(
            Problem(
                file,
                None,
                f"and {unlisted} more problem{'s' if unlisted > 1 else ''} "
                f"(at most {MAX_PROBLEMS} are listed for one file)",
            )
        )
    return listed


def refused_words(total: int) -> str:
    return f"refused: {total} problem{'s' if total > 1 else ''}, listed below"


def errors_text(
    problems: Iterable[Problem],
    withdrawn: str | None = None,
    notes: Iterable[str] = (),
    states: Iterable[State] = (),
) -> str:
    """deliver/ERRORS.txt; empty when there is nothing to say (the file is removed then):
    no problem, no note, and every file delivered.

    `notes` are about the folder as a whole (said first, one paragraph each);
    `states` one line per file; then every problem, each file's in its order.
    """
    # A stable sort: one file's problems stay in the order they were found.
    lines = [str(p) for p in sorted(problems, key=lambda p: p.file)]
    states = sorted(states, key=lambda s: s.file)
    head = [shown(note) for note in notes]
    if withdrawn:
        head.insert(0, shown(f"Nothing in this folder is delivered: {withdrawn}"))
    if not lines and not head and all(s.delivered for s in states):
        return ""
    out = [line for note in head for line in (note, "")]
    if states:
        out += ["THE FILES IN THIS FOLDER", *(str(s) for s in states), ""]
    if lines:
        out += [
            *(["PROBLEMS"] if states else []),
            *lines,
            "",
            "Each problem is a file that was not delivered to Iconik. Fix it and save",
            "it again; this list is rewritten at each look. README.txt says how to deliver.",
            "",
        ]
    return "\n".join(out).rstrip("\n") + "\n"


def report_text(
    sections: Iterable[tuple[str, str, house_style.Report]],
    style: house_style.Style,
    frame_rate: str | None,
) -> str:
    """deliver/REPORT.txt: the house-style findings of each file, `sections`
    being (file, its state, its report); empty when no file has any."""
    body: list[str] = []
    for file, state, report in sorted(sections, key=lambda s: s[0]):
        if not report.total:
            continue
        body += ["", f"{shown(file)} ({shown(state)}): {_findings(report.total)}"]
        body += [
            f"  line {f.line}, cue {f.cue}: {house_style.RULE_NAMES[f.rule]}: {f.value}"
            for f in report.listed
        ]
        if report.more:
            body.append(
                f"  and {_findings(report.more)} more (at most {house_style.MAX_LISTED} "
                "are listed for one file)"
            )
    if not body:
        return ""
    then = (
        "Under this service's setting a file with findings is refused."
        if style.strict
        else "Files with findings are still delivered: this is advice, not a refusal."
    )
    rules = [f"  - {words}" for words in house_style.describe(style, frame_rate)]
    return "\n".join(
        [
            "HOUSE STYLE REPORT",
            "",
            "The style the files here are read against:",
            *rules,
            then,
            *body,
            "",
        ]
    )


def _findings(count: int) -> str:
    return f"{count} finding{'s' if count > 1 else ''}"
