"""Which files a bundle change may write, keep or remove. Pure.

The one rule: the service writes over, or removes, only a file it wrote
itself and nobody changed since, which the previous manifest proves (same
path, same SHA-256). Anything else at a path the service wants is the
captioner's: a file they added, one they edited in place, or one that
appeared at a name Iconik only later provides. It is left exactly as it is,
and the service's version goes beside it (`captions/en.iconik-r3.vtt`).
Once a path is the captioner's it stays theirs (`captioner_edits`).

The caller reads the digests of the files involved (`on_disk`: path to
SHA-256, None where there is no file) and does the writing; nothing here
touches storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.bundle.manifest import MANIFEST, beside
from service.bundle.outtray import FOLDER as OUTTRAY


@dataclass(frozen=True)
class Placement:
    """Where each file the service wants goes, and what it must leave alone."""

    where: dict[str, str]
    captioner_edits: list[str]
    _previous: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    _on_disk: Mapping[str, str | None] = field(default_factory=dict, repr=False)

    def stale(self, kept: Iterable[str]) -> list[str]:
        """Files of the previous manifest that the new one drops and that are
        still exactly what the service wrote: safe to remove. Never anything in
        deliver/: that folder is the captioners' out-tray."""
        keep = set(kept) | set(self.captioner_edits)
        return sorted(
            path
            for path, entry in self._previous.items()
            if path not in keep
            and path != MANIFEST
            and not path.startswith(f"{OUTTRAY}/")
            and self._on_disk.get(path) == entry["sha256"]
        )

    def reusable(self, path: str, **expected: Any) -> dict[str, Any] | None:
        """The previous manifest's entry for `path` when the file there is still
        the one it lists and the entry matches `expected` (e.g. the same Iconik
        proxy id and size), so it need not be fetched again."""
        entry = self._previous.get(path)
        if entry is None or self.where.get(path) != path:
            return None
        if self._on_disk.get(path) != entry["sha256"]:
            return None
        if any(entry.get(name) != value for name, value in expected.items()):
            return None
        return dict(entry)


def paths_to_check(wanted: Iterable[str], previous: Mapping[str, Any] | None) -> list[str]:
    """The paths whose current digest `place` needs."""
    listed = [f["path"] for f in (previous or {}).get("files", [])]
    return sorted({*wanted, *listed} - {MANIFEST})


def place(
    wanted: Iterable[str],
    *,
    previous: Mapping[str, Any] | None,
    on_disk: Mapping[str, str | None],
    revision: int,
) -> Placement:
    """Decide, for each path the service wants to write, where it goes."""
    listed = {f["path"]: f for f in (previous or {}).get("files", [])}
    theirs = set((previous or {}).get("captioner_edits", []))

    def is_theirs(path: str) -> bool:
        current = on_disk.get(path)
        if path in theirs:
            return True
        if current is None:
            return False
        entry = listed.get(path)
        return entry is None or entry["sha256"] != current

    wanted = list(wanted)
    theirs |= {path for path in wanted if is_theirs(path)}
    where = {path: beside(path, revision) if path in theirs else path for path in wanted}
    return Placement(where, sorted(theirs), listed, dict(on_disk))
