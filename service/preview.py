"""The bundle's offline preview page, index.html: the media with every caption track.

A captioner opens it straight from the shared folder (file://), so it needs
no server: the caption texts ride in the page as JSON and its script adds
them to the video as text tracks.

Every value on the page is escaped for the context it lands in, because
none of them is ours: titles, metadata, form values, paths and cue text
come from Iconik and from whoever filled it in, and the page runs in the
captioner's browser. HTML text and quoted attributes go through `_text`
(escaped, and kept as they would be once parsed); links through `_href`
(always a relative URL, never a scheme); the captions-data script through
`script_json` (nothing in it can end the element). A value that escaped its
context could rewrite the page or run script there, and would no longer
show what it was.

Pure: the caller writes the bytes (service/build.py).
"""

from __future__ import annotations

import html
import json
from typing import Any

from service.bundle import caption_label

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: captioning project</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 60rem; color: #222; }}
 video {{ width: 100%; background: #000; }}
 table {{ border-collapse: collapse; }} td, th {{ padding: .2rem .8rem .2rem 0; text-align: left; }}
 .status {{ font-size: .9rem; color: #555; }}
 .withdrawn {{ background: #fee; border: 1px solid #c00; padding: .5rem 1rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
{withdrawn}
<p class="status">Asset <code>{asset_id}</code> · revision {revision}{duration}</p>
<video id="player" controls preload="metadata" src="{media_src}"></video>
<p class="status" id="video-status" data-state="loading">Loading video…</p>
<label>Caption track <select id="track-select"><option value="">(none)</option></select></label>
<h2>Caption files</h2>
<ul id="caption-list">{caption_items}</ul>
<h2>Request</h2>
<table>{request_rows}</table>
{form_section}
<script id="captions-data" type="application/json">{captions_json}</script>
<script>
(function () {{
  "use strict";
  var video = document.getElementById("player");
  var select = document.getElementById("track-select");
  var status = document.getElementById("video-status");
  var captions = JSON.parse(document.getElementById("captions-data").textContent);
  var cueCount = 0;

  function seconds(stamp) {{
    var parts = stamp.trim().split(":").map(parseFloat);
    return parts.reduce(function (total, part) {{ return total * 60 + part; }}, 0);
  }}
  // WebVTT cues are parsed here rather than loaded with <track src>, because
  // browsers refuse to fetch tracks from file:// pages, and this page must
  // work straight from the shared folder.
  function addTrack(caption) {{
    var track = video.addTextTrack(caption.closed_captions ? "captions" : "subtitles",
                                   caption.label, caption.language);
    caption.text.replace(/\\r/g, "").split(/\\n\\n+/).forEach(function (block) {{
      var lines = block.split("\\n");
      var timing = lines.findIndex(function (l) {{ return l.indexOf("-->") !== -1; }});
      if (timing === -1) return;
      var range = lines[timing].split("-->");
      var end = range[1].trim().split(/\\s+/)[0];
      try {{
        track.addCue(new VTTCue(seconds(range[0]), seconds(end),
                                lines.slice(timing + 1).join("\\n")));
        cueCount += 1;
      }} catch (e) {{ /* a malformed cue is skipped, the rest still show */ }}
    }});
    track.mode = "disabled";
    var option = document.createElement("option");
    option.value = String(video.textTracks.length - 1);
    option.textContent = caption.label;
    select.appendChild(option);
  }}
  captions.forEach(addTrack);
  select.addEventListener("change", function () {{
    for (var i = 0; i < video.textTracks.length; i++) {{
      video.textTracks[i].mode = String(i) === select.value ? "showing" : "disabled";
    }}
  }});
  if (captions.length) {{ select.value = "0"; select.dispatchEvent(new Event("change")); }}
  document.body.setAttribute("data-tracks", String(video.textTracks.length));
  document.body.setAttribute("data-cues", String(cueCount));
  video.addEventListener("loadedmetadata", function () {{
    status.textContent = "Video ready: " + video.duration.toFixed(2) + " s, " +
      video.videoWidth + "x" + video.videoHeight;
    status.setAttribute("data-state", "loaded");
    status.setAttribute("data-duration", String(video.duration));
  }});
  video.addEventListener("error", function () {{
    status.textContent = "This browser cannot play the video; open " +
      video.getAttribute("src") + " in a media player.";
    status.setAttribute("data-state", "error");
  }});
}})();
</script>
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


# Characters the JSON of the captions-data script may not hold as themselves:
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


def _rows(values: dict[str, Any]) -> str:
    return "".join(
        f"<tr><th>{_text(str(k))}</th><td>{_text(_display(v))}</td></tr>"
        for k, v in values.items()
        if v not in (None, "", [], {})
    )


def _display(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _skipped_label(track: dict[str, Any]) -> str:
    return caption_label(str(track.get("language") or "und"), bool(track.get("closed_captions")))


def render_preview(manifest: dict[str, Any], caption_texts: dict[str, str]) -> str:
    """index.html for a bundle; `caption_texts` maps each caption file's path to its text."""
    asset = manifest["asset"]
    request = manifest["request"]
    media = next((f for f in manifest["files"] if f["kind"] == "media"), None)
    captions = [
        {
            "language": f.get("language") or "und",
            "closed_captions": bool(f.get("closed_captions")),
            "label": caption_label(f.get("language") or "und", bool(f.get("closed_captions"))),
            "path": f["path"],
            "text": caption_texts.get(f["path"], ""),
        }
        for f in manifest["files"]
        if f["kind"] == "caption" and f["path"].endswith(".vtt")
    ]
    caption_items = "".join(
        f'<li><a href="{_href(f["path"])}">{_text(f["path"])}</a></li>'
        for f in manifest["files"]
        if f["kind"] == "caption"
    ) + "".join(
        f'<li class="skipped">{_text(_skipped_label(t))}: not in this bundle. '
        f"{_text(str(t.get('reason', '')))}</li>"
        for t in manifest.get("tracks_skipped", [])
    )
    duration = asset.get("duration_seconds")
    form = request.get("form_values") or {}
    withdrawn = ""
    if manifest.get("status") == "withdrawn":
        withdrawn = '<p class="withdrawn">This project has been withdrawn: see WITHDRAWN.txt.</p>'
    return _PAGE.format(
        title=_text(asset.get("title") or "untitled"),
        asset_id=_text(asset["id"]),
        revision=int(manifest.get("revision", 1)),
        duration=f" · {duration:.2f} s" if isinstance(duration, int | float) else "",
        withdrawn=withdrawn,
        media_src=_href(media["path"]) if media else "",
        caption_items=caption_items or "<li>No captions yet.</li>",
        request_rows=_rows(
            {
                "Requested by": request.get("requested_by"),
                "Requested at": request.get("requested_at"),
                "Request id": request.get("request_id"),
                "Iconik": asset.get("web_url"),
            }
        ),
        form_section=(
            f"<h2>Notes for the captioner</h2><table>{_rows(form)}</table>" if form else ""
        ),
        captions_json=script_json(captions),
    )
