"""The bundle's `deliver/` folder, the captioners' out-tray: what the service
writes there. Pure.

    deliver/
      README.txt     how to deliver (written with every build)
      RECEIPT.json   what reached Iconik, and when (written with each delivery)
      ERRORS.txt     what could not be delivered, and why (kept current by the scan)

Everything else in the folder is the captioners'; the service reads it and
never writes, renames or deletes it.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from service.captions import TOLERANCE_SECONDS, timestamp
from service.logging import redact_all

FOLDER = "deliver"
README = "README.txt"
RECEIPT = "RECEIPT.json"
ERRORS = "ERRORS.txt"
SERVICE_FILES = frozenset({README, RECEIPT, ERRORS})
README_PATH = f"{FOLDER}/{README}"
RECEIPT_PATH = f"{FOLDER}/{RECEIPT}"
ERRORS_PATH = f"{FOLDER}/{ERRORS}"


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


def readme(title: str, asset_id: str, duration_seconds: float | None, scan_seconds: float) -> str:
    """deliver/README.txt: plain words for someone who has only this folder."""
    if scan_seconds > 0:
        every = "every minute" if scan_seconds == 60 else f"every {scan_seconds:g} seconds"
        when = (
            f"The service looks at this folder {every}. A file is taken once it has\n"
            "stopped changing (so a file still being copied is never sent half-way),\n"
            "checked, and sent to Iconik, where it replaces the asset's track of\n"
            "that language and kind. Your file stays here exactly as it is."
        )
    else:
        when = (
            "Deliveries through this folder are turned off at the moment: files put\n"
            "here stay here and are not sent. Please tell your contact."
        )
    length = timestamp(round(duration_seconds * 1000)) if duration_seconds is not None else "?"
    return f"""DELIVERING FINISHED CAPTIONS
============================

Project: {title} ({asset_id}), video length {length}.

1. Name each finished track after its language, one file per track:

     en.vtt        English subtitles, WebVTT
     en.srt        English subtitles, SubRip
     fr.cc.vtt     French closed captions (with sound descriptions), WebVTT
     pt-BR.cc.srt  Brazilian Portuguese closed captions, SubRip

   The language is a short code (en, fr, de, es, pt-BR, ...). Put ".cc"
   before the extension for closed captions. Use one file per language and
   kind: en.vtt and en.srt side by side are not delivered.

2. Put the file in this folder (not in a subfolder).

WHAT HAPPENS NEXT

{when}

To correct a track, save the new version under the same name: it is sent
again and replaces the one in Iconik. The same content is never sent twice.

WHERE TO LOOK

  RECEIPT.json  every file that reached Iconik: its name, its language,
                whether it is closed captions, and when it was delivered.
  ERRORS.txt    every file that could not be delivered: its name, the line
                and what is wrong. Fix the file and save it again; the list
                is rewritten at each look and disappears once nothing is wrong.

A file is refused when it is not UTF-8 text, when a cue's times cannot be
read (WebVTT 00:01:02.500 --> 00:01:04.000, SubRip 00:01:02,500 -->
00:01:04,000), when a cue ends before it starts, when a cue starts before
the cue above it (cues overlapping is fine), or when a cue starts after the
end of the video (with {TOLERANCE_SECONDS:g} second of leeway).

README.txt, RECEIPT.json and ERRORS.txt are written by the service; changes
to them are overwritten. Nothing else in this folder is ever changed or
deleted by the service.
"""


def receipt_bytes(deliveries: list[dict[str, Any]]) -> bytes:
    text = json.dumps(redact_all({"deliveries": deliveries}), indent=2, ensure_ascii=False)
    return (text + "\n").encode()


def delivery_entry(
    *,
    path: str,
    sha256: str,
    language: str,
    closed_captions: bool,
    subtitle_id: str,
    delivered_at: str,
) -> dict[str, Any]:
    """One delivered file, as RECEIPT.json and project.json's `deliveries` list it."""
    return {
        "path": path,
        "sha256": sha256,
        "language": language,
        "closed_captions": closed_captions,
        "subtitle_id": subtitle_id,
        "delivered_at": delivered_at,
    }


def latest_delivery(
    deliveries: Iterable[dict[str, Any]], language: str, closed_captions: bool
) -> dict[str, Any] | None:
    """The delivery that made Iconik's track of this language and kind what it is."""
    found = None
    for entry in trusted_deliveries(deliveries):
        if (entry["language"].lower(), bool(entry.get("closed_captions"))) == (
            language.lower(),
            closed_captions,
        ):
            found = entry
    return found


def trusted_deliveries(deliveries: Any) -> list[dict[str, Any]]:
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


@dataclass(frozen=True, order=True)
class Problem:
    """One line of ERRORS.txt: a file that is not delivered, where, and why."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f", line {self.line}" if self.line else ""
        return f"{shown(self.file)}{where}: {shown(self.reason)}"


def errors_text(
    problems: Iterable[Problem], withdrawn: str | None = None, notes: Iterable[str] = ()
) -> str:
    """deliver/ERRORS.txt; empty when there is nothing to say (the file is removed then).

    `notes` are about the folder as a whole (said first, one paragraph each).
    """
    lines = [str(p) for p in sorted(problems)]
    head = [shown(note) for note in notes]
    if withdrawn:
        head.insert(0, shown(f"Nothing in this folder is delivered: {withdrawn}"))
    if not lines and not head:
        return ""
    if head:
        head = [line for note in head for line in (note, "")]
    if not lines:
        return "\n".join([*head[:-1], ""])
    return "\n".join(
        [
            *head,
            *lines,
            "",
            "Each line is a file that was not delivered to Iconik. Fix it and save it",
            "again; this list is rewritten at each look. README.txt says how to deliver.",
            "",
        ]
    )
