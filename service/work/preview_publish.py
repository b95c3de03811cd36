"""The preview page written with each publish of a bundle: build, withdraw, delivery.

The page shows each language's delivery state as of the publish that wrote
it, so every publish writes it anew: a build or refresh (service/work/build.py),
a withdrawal, and a delivery (service/deliver/task.py, which rewrites
RECEIPT.json). What it needs beyond the manifest is read from the folder:
deliver/ERRORS.txt (the scan's word on what was refused) and, when the
caller does not hold them already, the caption tracks the page embeds.
Everything read is bounded, never followed through a link, and only ever
shown as text.
"""

from __future__ import annotations

from typing import Any

from service.bundle import manifest as bundle
from service.bundle import outtray, preview
from service.logging import redact
from service.storage import NotRegularFile, check_relative
from service.storage import TooLarge as StorageTooLarge
from service.work.tasks import TaskContext

# ERRORS.txt holds one line per file of deliver/, which is capped at
# outtray.MAX_ENTRIES: this is many times what it can say.
MAX_ERRORS_BYTES = 256 * 1024


async def read_errors(ctx: TaskContext, folder: str) -> str | None:
    """deliver/ERRORS.txt as it is now; None when there is none."""
    try:
        data = await ctx.storage.read_file(folder, outtray.ERRORS_PATH, limit=MAX_ERRORS_BYTES)
    except StorageTooLarge:
        return f"{outtray.ERRORS_PATH} is too large to show here: open it in the folder."
    except NotRegularFile:
        return None
    return None if data is None else data.decode("utf-8", "replace")


async def read_caption_texts(ctx: TaskContext, folder: str, files: Any) -> dict[str, str]:
    """The WebVTT tracks a manifest read back from the folder lists, as text for the
    page; an entry of another shape, or a file that is no longer a plain file
    under the cap, is left out (anyone may have edited the manifest or the file)."""
    texts: dict[str, str] = {}
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict) or entry.get("kind") != "caption":
            continue
        path = entry.get("path")
        if not isinstance(path, str) or not path.endswith(".vtt"):
            continue
        try:
            data = await ctx.storage.read_file(
                folder, check_relative(path), limit=ctx.settings.max_caption_bytes
            )
        except (NotRegularFile, StorageTooLarge, ValueError):
            continue
        texts[path] = (data or b"").decode("utf-8", "replace")
    return texts


async def page_bytes(
    ctx: TaskContext,
    folder: str,
    manifest: dict[str, Any],
    caption_texts: dict[str, str] | None = None,
) -> bytes:
    """index.html for `manifest`, as of now (redacted: a value could quote a credential)."""
    if caption_texts is None:
        caption_texts = await read_caption_texts(ctx, folder, manifest.get("files"))
    page = preview.render_preview(
        manifest,
        caption_texts,
        errors_text=await read_errors(ctx, folder),
        due_date_field=ctx.settings.due_date_field,
    )
    return redact(page).encode()


async def rewrite_page(
    ctx: TaskContext, folder: str, manifest: dict[str, Any], staging: Any
) -> dict[str, Any]:
    """Stage the page anew for `manifest`; the manifest listing it.

    Only over the page the service wrote (same path, same SHA-256 as the
    manifest lists): a page a captioner changed is theirs, and the next build
    writes the service's beside it, as for any file (service/bundle/plan.py).
    """
    files = manifest.get("files")
    entry = next(
        (
            f
            for f in (files if isinstance(files, list) else [])
            if f.get("path") == bundle.PREVIEW and f.get("kind") == "preview"
        ),
        None,
    )
    if entry is None or bundle.PREVIEW in manifest.get("captioner_edits", []):
        return manifest
    on_disk = await ctx.storage.file_digest(folder, bundle.PREVIEW, size=entry["size"])
    if on_disk != entry["sha256"]:
        return manifest
    page = await page_bytes(ctx, folder, manifest)
    size, digest = await staging.write_bytes(bundle.PREVIEW, page)
    written = {**entry, "size": size, "sha256": digest}
    return {**manifest, "files": [written if f is entry else f for f in manifest["files"]]}
