"""The bundle's offline preview page, index.html: the captioner's workspace.

The video with a cue list beside it for the chosen track (timecodes from
the asset's start timecode at its frame rate, or media time; a click or
Enter on a cue plays from there; the current cue is highlighted), the
delivery state of each language, the brief with each field's label, the
due date and the caption files. What is shown is worked out in
service/bundle/preview_data.py; the style and script are service/bundle/preview_script.py.

A captioner opens it straight from the shared folder (file://), so it needs
no server and no network: the caption texts ride in the page as JSON and
its script adds them to the video as text tracks. It links to nothing but
the bundle's own files (never to Iconik: a captioner cannot open that).

Every value on the page is escaped for the context it lands in, because
none of them is ours: titles, metadata, form values, paths and cue text
come from Iconik and from whoever filled it in, and the page runs in the
captioner's browser. HTML text and quoted attributes go through `_text`
(escaped, and kept as they would be once parsed); links through `_href`
(always a relative URL, never a scheme); the page-data script through
`script_json` (nothing in it can end the element). A value that escaped its
context could rewrite the page or run script there, and would no longer
show what it was.

Pure: the caller writes the bytes (service/work/preview_publish.py).
"""

from __future__ import annotations

import html
import json
from typing import Any

from service.bundle import preview_data as data
from service.bundle.manifest import caption_label
from service.bundle.preview_script import SCRIPT, STYLE

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: captioning project</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
{withdrawn}{due}
<p class="status">Asset <code>{asset_id}</code> · revision {revision}{duration} · {timing}</p>
<div class="workspace">
<div class="player">
<video id="player" controls preload="metadata" src="{media_src}"></video>
<p class="status" id="video-status" data-state="loading">Loading video…</p>
<div class="controls">
<label>Caption track <select id="track-select"><option value="">(none)</option></select></label>
{mode_button}<span id="clock" aria-live="off"></span>
</div>
</div>
<div class="cues">
<h2>Cues <span id="cue-count"></span></h2>
<ul id="cue-list" aria-label="Cues of the chosen track: Enter plays from a cue"></ul>
</div>
</div>
<h2>Delivery</h2>
<p class="status">As of revision {revision} of this folder: deliver/RECEIPT.json
and deliver/ERRORS.txt say what is newer.</p>
<table id="delivery" class="info">{delivery_rows}</table>
{errors}
<h2>Brief</h2>
<table id="brief" class="info">{form_rows}</table>
<h2>Request</h2>
<table id="request" class="info">{request_rows}</table>
{metadata_section}
<h2>Caption files</h2>
<ul id="caption-list">{caption_items}</ul>
<script id="page-data" type="application/json">{page_json}</script>
<script>{script}</script>
</body>
</html>
"""


def _text(value: str) -> str:
    """`value` escaped for HTML text or a quoted attribute, kept as it was once parsed.

    Parsing turns a CR into a LF and a NUL into U+FFFD (or drops it), and
    no escape carries a NUL through: it is written as the U+FFFD it would
    become anyway; the CR as a character reference, which parsing keeps.
    """
    return html.escape(value).replace("\r", "&#13;").replace("\0", "\ufffd")


def _href(path: str) -> str:
    """A bundle path as a relative URL: "a:b" would be a URL of scheme "a"."""
    first = path.split("/", 1)[0]
    return _text(f"./{path}" if ":" in first else path)


# Characters the JSON of the page-data script may not hold as themselves:
# `<` and `>` could start or end a tag or a comment (`</script>`, `<!--`,
# which turns on the script-data escaped states), `&` for good measure, and
# U+2028/U+2029, line terminators to JavaScript before ES2019.
_JSON_IN_HTML = str.maketrans({c: f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"})


def script_json(value: Any) -> str:
    """`value` as JSON that nothing in it can take out of a <script> element.

    Each such character can only be inside a JSON string, where the escape
    means the same character.
    """
    return json.dumps(value, ensure_ascii=False).translate(_JSON_IN_HTML)


def _rows(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{_text(k)}</th><td>{_text(v)}</td></tr>" for k, v in rows if v)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _skipped_label(track: dict[str, Any]) -> str:
    return caption_label(str(track.get("language") or "und"), bool(track.get("closed_captions")))


def _delivery_rows(states: list[dict[str, str]]) -> str:
    if not states:
        return "<tr><td>No caption track yet: deliver one as README.txt in deliver/ says.</td></tr>"
    return "".join(
        f'<tr class="state-{s["state"]}" data-state="{s["state"]}"><th>{_text(s["label"])}</th>'
        f"<td>{_STATE_NAMES[s['state']]}</td><td>{_text(s['detail'])}</td></tr>"
        for s in states
    )


_STATE_NAMES = {"delivered": "Delivered", "refused": "Refused", "waiting": "Waiting"}


def render_preview(
    manifest: dict[str, Any],
    caption_texts: dict[str, str],
    *,
    errors_text: str | None = None,
    due_date_field: str = "due_date",
) -> str:
    """index.html for a bundle; `caption_texts` maps each caption file's path to
    its text; `errors_text` is deliver/ERRORS.txt as it is now (None: absent).

    The manifest may be one read back from the folder (service/bundle/readback.py:
    the service's shape, not every value's type): a delivery rewrites the page
    after the track is in Iconik, so nothing here may fail on a value.
    """
    asset = _dict(manifest.get("asset"))
    request = _dict(manifest.get("request"))
    files = [f for f in _list(manifest.get("files")) if isinstance(f, dict)]
    media = next((f for f in files if f["kind"] == "media"), None)
    captions = [
        {
            "language": f.get("language") or "und",
            "closed_captions": bool(f.get("closed_captions")),
            "label": caption_label(f.get("language") or "und", bool(f.get("closed_captions"))),
            "path": f["path"],
            "text": caption_texts.get(f["path"], ""),
        }
        for f in files
        if f["kind"] == "caption" and f["path"].endswith(".vtt")
    ]
    caption_items = "".join(
        f'<li><a href="{_href(f["path"])}">{_text(f["path"])}</a></li>'
        for f in files
        if f["kind"] == "caption"
    ) + "".join(
        f'<li class="skipped">{_text(_skipped_label(t))}: not in this bundle. '
        f"{_text(str(t.get('reason', '')))}</li>"
        for t in _list(manifest.get("tracks_skipped"))
        if isinstance(t, dict)
    )
    duration = asset.get("duration_seconds")
    withdrawn = ""
    if manifest.get("status") == "withdrawn":
        withdrawn = '<p class="withdrawn">This project has been withdrawn: see WITHDRAWN.txt.</p>'
    due = data.due_date(request, due_date_field)
    timing = data.timing(asset)
    if timing is None:
        timing_line = "frame rate unknown: times are media time"
    else:
        known = "starts at" if timing["start_known"] else "no start timecode: counted from"
        timing_line = f"{known} {timing['start']} · {timing['label']}"
    form = request.get("form_values")
    metadata = data.labelled(asset.get("metadata"), asset.get("metadata_labels"))
    return _PAGE.format(
        title=_text(data.display(asset.get("title")) or "untitled"),
        style=STYLE,
        script=SCRIPT,
        asset_id=_text(str(asset.get("id", ""))),
        revision=_count(manifest.get("revision")),
        duration=f" · {duration:.2f} s" if isinstance(duration, int | float) else "",
        # (readback keeps a duration only when it is a number)
        timing=_text(timing_line),
        withdrawn=withdrawn,
        due=f'<p class="due" id="due-date">Due: {_text(due)}</p>' if due else "",
        media_src=_href(media["path"]) if media else "",
        mode_button=(
            '<button type="button" id="time-mode" aria-pressed="false">Show media time</button>'
            if timing
            else ""
        ),
        delivery_rows=_delivery_rows(data.caption_delivery_states(manifest, errors_text)),
        errors=(
            f'<h3>deliver/ERRORS.txt</h3><pre id="errors">\n{_text(errors_text)}</pre>'
            if errors_text and errors_text.strip()
            else ""
        ),
        form_rows=_rows(data.labelled(form, request.get("form_labels"), (due_date_field,)))
        or "<tr><td>No notes with this request.</td></tr>",
        request_rows=_rows(
            [
                ("Requested by", data.display(request.get("requested_by"))),
                ("Requested at", data.display(request.get("requested_at"))),
                ("Request id", data.display(request.get("request_id"))),
            ]
        ),
        metadata_section=(
            f'<h2>About the asset</h2><table id="metadata" class="info">{_rows(metadata)}</table>'
            if metadata
            else ""
        ),
        caption_items=caption_items or "<li>No captions yet.</li>",
        page_json=script_json({"captions": captions, "timing": timing}),
    )
