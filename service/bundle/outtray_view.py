"""What one look at a deliver/ folder has to say about each file in it: its
state (one line of ERRORS.txt), its problems and its house-style findings.
Pure; the scan (service/deliver/scan.py) does the reading and the queueing.

The states, as a captioner reads them:

    waiting (seen at 12:03:10 UTC, still changing)   not yet taken: it is taken
                                                      once two looks find it the same
    checking (...)                                    a delivery is stored for it
    delivered at 2027-01-15 08:00:00 UTC[; notes]     this content is its track's
    refused: 3 problems, listed below                 every problem is listed
    not delivered[: why]                              anything else (a name, a
                                                      withdrawn project, a failure)
    waiting: en.vtt is the en track as delivered; ... the other of two files
                                                      for one track
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.bundle import outtray
from service.bundle.outtray import Problem, State
from service.captions import house_style
from service.captions import track as captions
from service.storage import StoredFile


@dataclass(frozen=True)
class Checked:
    """One content of one file, read and checked (kept while the file stays as it is)."""

    sha256: str
    name: captions.TrackName
    refusal: captions.Refused | None
    style: house_style.Report | None = None  # its house-style findings, when it was read


@dataclass
class View:
    """What one look has to say about one folder."""

    states: list[State] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    findings: list[tuple[str, str, house_style.Report]] = field(default_factory=list)

    def say(self, file: str, words: str, *problems: Problem, delivered: bool = False) -> None:
        self.states.append(State(file, words, delivered))
        self.problems.extend(problems)

    def found(self, file: str, words: str, checked: Checked) -> None:
        """The file's house-style findings, for REPORT.txt."""
        if checked.style is not None and checked.style.total:
            self.findings.append((file, words, checked.style))

    def waiting(self, file: str, seen: float) -> None:
        at = datetime.fromtimestamp(seen, UTC).strftime("%H:%M:%S")
        self.say(file, f"waiting (seen at {at} UTC, still changing)")

    def delivered(self, file: str, entry: dict[str, Any], checked: Checked | None) -> None:
        words = delivered_words(entry)
        self.say(file, words, delivered=True)
        if checked is not None:
            self.found(file, words, checked)

    def one_too_many(
        self,
        track: str,
        tracks: Sequence[tuple[StoredFile, Checked]],
        deliveries: list[dict[str, Any]],
    ) -> None:
        """Two files for one track: the delivered one stays delivered, the other waits."""
        current = [
            (found, checked, entry)
            for found, checked in tracks
            if (entry := outtray.delivered_as(deliveries, path_of(found), checked.sha256))
        ]
        if current:
            kept, checked, entry = current[0]
            self.delivered(kept.name, entry, checked)
            shown = outtray.shown(kept.name)
            for found, _ in tracks:
                if found is not kept:
                    self.say(
                        found.name,
                        f"waiting: {shown} is the {track} track as delivered; to deliver "
                        f"{outtray.shown(found.name)} instead, remove {shown}, or remove this one",
                    )
            return
        names = " and ".join(sorted(outtray.shown(f.name) for f, _ in tracks))
        reason = f"not delivered: {names} are both the {track} track; keep one"
        for found, _ in tracks:
            self.say(found.name, "not delivered", Problem(found.name, None, reason))

    def stored(self, file: str, checked: Checked, outcome: str | bool | None) -> None:
        """A file a delivery was stored for: `outcome` is False when the queue
        was full, the reason when the delivery failed, else None."""
        problems: list[Problem] = []
        if checked.refusal is not None:
            problems = outtray.problems_of(file, checked.refusal)
            words = outtray.refused_words(outtray.problem_count(checked.refusal))
        elif outcome is False:
            words = "waiting (the service is busy: it is sent at a later look)"
        elif outcome:
            words = "not delivered: the delivery failed, see below"
            problems = [Problem(file, None, str(outcome))]
        else:
            words = "checking (sent to Iconik once it passes its checks)"
        self.say(file, words, *problems)
        self.found(file, words, checked)


def path_of(found: StoredFile) -> str:
    return f"{outtray.FOLDER}/{found.name}"


def check(filename: str, data: bytes, media: captions.Media, style: house_style.Style) -> Checked:
    """Read and check one file (in a thread): its refusal, or its house-style findings."""
    sha256 = hashlib.sha256(data).hexdigest()
    name = captions.parse_name(filename)
    try:
        track = captions.read(filename, data, media)
    except captions.Refused as refused:
        return Checked(sha256, name, refused)
    except (MemoryError, RecursionError):
        # Not retried while the file stays as it is: no crash loop.
        refusal = captions.Refused(
            "the file could not be checked: it is too large or too complex to read"
        )
        return Checked(sha256, name, refusal)
    del data
    findings = house_style.check(track.cues, style, media.frame_rate)
    return Checked(sha256, name, house_style.refusal(findings, style), findings)


def delivered_words(entry: dict[str, Any]) -> str:
    """`delivered at 2027-01-15 08:00:00 UTC; times counted from ...` for a receipt entry."""
    when = str(entry.get("delivered_at", "?"))[:40]
    with contextlib.suppress(ValueError):
        when = datetime.fromisoformat(when).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "; ".join([f"delivered at {when}", *outtray.entry_notes(entry)])
