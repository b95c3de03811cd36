"""The notifications a task's change causes, made from what it published.

Each is an `Event` returned with the task's outcome (service/work/runner.py
stores it with the completion, service/queue/outbox.py), its id made from the
task id and the type, so a task that runs again makes the same event and the
outbox keeps one. `data` says what a captioner or a house's system needs:
the asset id and title, the bundle folder's name (relative: never a path on
a server or a URL), the languages asked for, the due date, the request id,
and what changed. Never a secret, a signed URL or an Iconik link.
"""

from __future__ import annotations

from typing import Any

from service.bundle import due_dates
from service.bundle import manifest as bundle
from service.logging import redact_all
from service.queue import (
    DELIVERED,
    PUBLISHED,
    REFRESHED,
    REFUSED,
    WITHDRAWN,
    Event,
    Task,
    Work,
    event_id,
)
from service.work.tasks import TaskContext


def _data(ctx: TaskContext, task: Task, manifest: dict[str, Any], folder: str) -> dict[str, Any]:
    """The event's facts from the manifest this task built (from Iconik, in
    memory): never from a manifest read back from the folder."""
    asset = manifest.get("asset") or {}
    request = manifest.get("request") or {}
    data: dict[str, Any] = {
        "asset_id": task.asset_id or asset.get("id"),
        "title": asset.get("title") or "",
        "folder": folder,
        "request_id": task.request_id,
        "languages": due_dates.languages_asked(
            request.get("form_values"), ctx.settings.target_languages_field
        ),
    }
    if request.get("due_date"):  # as the build read it: ISO 8601 in DUE_DATE_ZONE
        data["due_date"] = request["due_date"]
    return data


def _data_of_work(task: Task, work: Work | None, folder: str) -> dict[str, Any]:
    """The event's facts as the bundle's last build recorded them in the queue
    (`Registry.work_of`): what a delivery or a withdrawal says, since the
    folder's project.json is the captioners' to write. Without a record
    (a bundle built before there was one), the asset id and the folder only."""
    data: dict[str, Any] = {
        "asset_id": task.asset_id or (work.asset_id if work else ""),
        "title": work.title if work else "",
        "folder": folder,
        "request_id": task.request_id,
        "languages": list(work.languages) if work else [],
    }
    if work is not None and work.due_date:
        data["due_date"] = work.due_date
    return data


def _event(ctx: TaskContext, task: Task, kind: str, data: dict[str, Any]) -> Event:
    # Redacted like a log line: a title or a problem could quote a credential.
    data = redact_all(data)
    return Event(event_id(task.task_id, kind), kind, str(data["asset_id"]), data, ctx.clock())


def published(ctx: TaskContext, task: Task, manifest: dict[str, Any], folder: str) -> Event:
    """A new bundle: new work for the captioners."""
    return _event(ctx, task, PUBLISHED, _data(ctx, task, manifest, folder))


def _tracks(manifest: dict[str, Any]) -> dict[str, str]:
    """{track label: content digest} of the WebVTT tracks the bundle holds from Iconik.

    The previous manifest is read back from the folder, so its labels are
    kept only when they are language codes: a captioner's text never
    reaches a notification as a track's name."""
    return {
        bundle.caption_label(str(f.get("language")), bool(f.get("closed_captions"))): str(
            f.get("sha256")
        )
        for f in manifest.get("files", [])
        if f.get("kind") == "caption"
        and f.get("format") == "webvtt"
        and due_dates.is_language(f.get("language"))
    }


def _media(manifest: dict[str, Any]) -> tuple[Any, ...] | None:
    for f in manifest.get("files", []):
        if f.get("kind") == "media":
            return (f.get("sha256"), f.get("iconik_id"))
    return None


def changes(previous: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """What a rebuild changed that a captioner cares about (empty: nothing)."""
    found: list[str] = []
    if previous.get("status") == "withdrawn" and manifest.get("status") != "withdrawn":
        found.append("restored (the asset is back in Iconik)")
    before, after = _tracks(previous), _tracks(manifest)
    found += [f"captions added: {t}" for t in sorted(after.keys() - before.keys())]
    both = sorted(after.keys() & before.keys())
    found += [f"captions updated: {t}" for t in both if after[t] != before[t]]
    found += [f"captions removed: {t}" for t in sorted(before.keys() - after.keys())]
    if _media(previous) != _media(manifest):
        found.append("media replaced")
    if (previous.get("asset") or {}).get("title") != (manifest.get("asset") or {}).get("title"):
        found.append("title changed")
    old_form = (previous.get("request") or {}).get("form_values")
    if old_form != (manifest.get("request") or {}).get("form_values"):
        found.append("brief changed")
    return found


def refreshed(
    ctx: TaskContext,
    task: Task,
    previous: dict[str, Any],
    manifest: dict[str, Any],
    folder: str,
) -> Event | None:
    """A rebuilt bundle, if something in it changed; None when nothing did."""
    what = changes(previous, manifest)
    if not what:
        return None
    return _event(ctx, task, REFRESHED, {**_data(ctx, task, manifest, folder), "changes": what})


def withdrawn(ctx: TaskContext, task: Task, work: Work | None, folder: str) -> Event:
    return _event(ctx, task, WITHDRAWN, _data_of_work(task, work, folder))


def delivered(
    ctx: TaskContext, task: Task, work: Work | None, folder: str, file: str, language: str
) -> Event:
    """A captioner's file went to Iconik: `languages` is its track's."""
    data = _data_of_work(task, work, folder)
    data.update(file=file, languages=[language], languages_asked=data["languages"])
    return _event(ctx, task, DELIVERED, data)


def refused(
    ctx: TaskContext,
    task: Task,
    work: Work | None,
    folder: str,
    file: str,
    language: str,
    problem: str,
) -> Event:
    """A captioner's file was refused: its name and its first problem."""
    data = _data_of_work(task, work, folder)
    data.update(file=file, problem=problem, languages=[language], languages_asked=data["languages"])
    return _event(ctx, task, REFUSED, data)
