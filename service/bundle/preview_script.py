"""The preview page's style and script: fixed text, no value of the bundle in it.

service/bundle/preview.py puts them in the page as they are; the bundle's values
reach the script only through the page-data JSON (parsed, never evaluated)
and reach the page only as text (`textContent`), never as markup.
"""

STYLE = """
 * { box-sizing: border-box; }
 body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 90rem;
        color: #222; line-height: 1.4; }
 h1 { font-size: 1.5rem; margin: .2rem 0; overflow-wrap: anywhere; }
 h2 { font-size: 1.15rem; margin: 1.2rem 0 .4rem; }
 .status { font-size: .9rem; color: #555; margin: .2rem 0; }
 .due { font-weight: 600; margin: .3rem 0; }
 .withdrawn { background: #fee; border: 1px solid #c00; padding: .5rem 1rem; }
 .workspace { display: grid; gap: 1rem; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); }
 video { width: 100%; max-height: 65vh; background: #000; display: block; }
 .controls { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center;
             margin: .4rem 0; }
 #clock { font-variant-numeric: tabular-nums; font-family: ui-monospace, monospace; }
 button, select { font: inherit; padding: .2rem .5rem; }
 .cues h2 { margin-top: 0; }
 #cue-list { list-style: none; margin: 0; padding: 0; max-height: 70vh; overflow-y: auto;
             border: 1px solid #ccc; }
 #cue-list li { display: grid; grid-template-columns: auto auto 1fr; gap: 0 .6rem;
                padding: .35rem .5rem; border-bottom: 1px solid #eee; cursor: pointer; }
 #cue-list li:focus { outline: 3px solid #1a5fb4; outline-offset: -3px; }
 #cue-list li.current { background: #fff3b0; }
 .time { font-family: ui-monospace, monospace; font-size: .85rem; color: #444;
         white-space: nowrap; }
 .text { white-space: pre-wrap; overflow-wrap: anywhere; }
 table { border-collapse: collapse; width: 100%; }
 td, th { padding: .25rem .8rem .25rem 0; text-align: left; vertical-align: top;
          overflow-wrap: anywhere; }
 th { font-weight: 600; width: 12rem; }
 .state-delivered { color: #146c2e; } .state-refused { color: #b00020; }
 .state-waiting { color: #555; }
 pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f6; padding: .5rem; }
 @media (max-width: 48rem) {
   body { padding: .5rem; }
   .workspace { grid-template-columns: minmax(0, 1fr); }
   #cue-list { max-height: 45vh; }
   #cue-list li { grid-template-columns: auto 1fr; }
   #cue-list li .text { grid-column: 1 / -1; }
   th { width: auto; }
   .info tr { display: block; padding: .25rem 0; } .info th, .info td { display: block; }
 }
"""

# WebVTT cues are parsed here rather than loaded with <track src>, because
# browsers refuse to fetch tracks from file:// pages, and this page must
# work straight from the shared folder.
SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("page-data").textContent);
  var video = document.getElementById("player");
  var select = document.getElementById("track-select");
  var status = document.getElementById("video-status");
  var list = document.getElementById("cue-list");
  var modeButton = document.getElementById("time-mode");
  var clock = document.getElementById("clock");
  var timing = data.timing;
  var mode = timing ? "timecode" : "media";
  var tracks = [];
  var shown = null;  // the cues in the list: [{start, end, text, item}]
  var cueCount = 0;

  function pad(n, width) { var s = String(n); while (s.length < width) s = "0" + s; return s; }
  function seconds(stamp) {
    var parts = stamp.trim().split(":").map(parseFloat);
    return parts.reduce(function (total, part) { return total * 60 + part; }, 0);
  }
  // As service/bundle/preview_data.py's format_frames (keep the two alike).
  function timecode(t) {
    // From whole milliseconds, in integers (exact below 2^53), halves up.
    var ms = Math.round(t * 1000), den = timing.denominator;
    var frame = timing.start_frame +
      Math.floor((ms * timing.numerator * 2 + 1000 * den) / (2000 * den));
    var nominal = timing.nominal, drop = timing.drop;
    if (drop) {
      var perTen = nominal * 600 - drop * 9, perMinute = nominal * 60 - drop;
      var tens = Math.floor(frame / perTen), rest = frame % perTen;
      frame += drop * 9 * tens + (rest > drop ? drop * Math.floor((rest - drop) / perMinute) : 0);
    }
    var secs = Math.floor(frame / nominal);
    return pad(Math.floor(secs / 3600) % 24, 2) + ":" + pad(Math.floor(secs / 60) % 60, 2) +
      ":" + pad(secs % 60, 2) + (drop ? ";" : ":") + pad(frame % nominal, 2);
  }
  function mediaTime(t) {
    var ms = Math.round(t * 1000);
    return pad(Math.floor(ms / 3600000), 2) + ":" + pad(Math.floor(ms / 60000) % 60, 2) + ":" +
      pad(Math.floor(ms / 1000) % 60, 2) + "." + pad(ms % 1000, 3);
  }
  function stamp(t) { return mode === "timecode" ? timecode(t) : mediaTime(t); }

  function parseCues(text) {
    var cues = [];
    text.replace(/\\r\\n?/g, "\\n").split(/\\n\\n+/).forEach(function (block) {
      var lines = block.split("\\n");
      var at = lines.findIndex(function (l) { return l.indexOf("-->") !== -1; });
      if (at === -1) return;
      var range = lines[at].split("-->");
      var start = seconds(range[0]), end = seconds(range[1].trim().split(/\\s+/)[0]);
      if (!isFinite(start) || !isFinite(end)) return;  // a malformed cue: the rest still show
      var words = lines.slice(at + 1).join("\\n").replace(/\\n+$/, "");
      cues.push({ start: start, end: end, text: words });
    });
    return cues;
  }
  function addTrack(caption) {
    var cues = parseCues(caption.text);
    var track = video.addTextTrack(caption.closed_captions ? "captions" : "subtitles",
                                   caption.label, caption.language);
    cues.forEach(function (cue) {
      try { track.addCue(new VTTCue(cue.start, cue.end, cue.text)); } catch (e) { /* skipped */ }
    });
    track.mode = "disabled";
    cueCount += cues.length;
    tracks.push({ track: track, cues: cues });
    var option = document.createElement("option");
    option.value = String(tracks.length - 1);
    option.textContent = caption.label;
    select.appendChild(option);
  }

  function seek(cue) {
    video.currentTime = cue.start;
    highlight();
  }
  function showList() {
    list.textContent = "";
    var chosen = tracks[Number(select.value)];
    shown = chosen && select.value !== "" ? chosen.cues : [];
    shown.forEach(function (cue, index) {
      var item = document.createElement("li");
      item.tabIndex = 0;
      item.setAttribute("data-index", String(index));
      ["start", "end"].forEach(function (which) {
        var time = document.createElement("span");
        time.className = "time " + which;
        item.appendChild(time);
      });
      var words = document.createElement("span");
      words.className = "text";
      words.textContent = cue.text;
      item.appendChild(words);
      item.addEventListener("click", function () { seek(cue); });
      item.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); seek(cue); }
        var next = event.key === "ArrowDown" ? item.nextElementSibling :
          event.key === "ArrowUp" ? item.previousElementSibling : null;
        if (next) { event.preventDefault(); next.focus(); }
      });
      cue.item = item;
      list.appendChild(item);
    });
    list.setAttribute("data-cues", String(shown.length));
    document.getElementById("cue-count").textContent =
      shown.length ? "(" + shown.length + ")" : "";
    if (!shown.length) {
      var empty = document.createElement("li");
      empty.textContent = tracks.length ? "No cues in this track." : "No caption track yet.";
      list.appendChild(empty);
    }
    showTimes();
    highlight();
  }
  function showTimes() {
    shown.forEach(function (cue) {
      cue.item.querySelector(".start").textContent = stamp(cue.start);
      cue.item.querySelector(".end").textContent = stamp(cue.end);
    });
    clock.textContent = stamp(video.currentTime || 0);
    if (modeButton) {
      modeButton.textContent = mode === "timecode" ? "Show media time" : "Show timecode";
      modeButton.setAttribute("aria-pressed", String(mode === "media"));
      document.body.setAttribute("data-time-mode", mode);
    }
  }
  function highlight() {
    var t = video.currentTime || 0;
    clock.textContent = stamp(t);
    (shown || []).forEach(function (cue) {
      var current = cue.start <= t && t < cue.end;
      if (current === cue.item.classList.contains("current")) return;
      cue.item.classList.toggle("current", current);
      if (current) {
        cue.item.setAttribute("aria-current", "true");
        if (!video.paused) cue.item.scrollIntoView({ block: "nearest" });
      } else {
        cue.item.removeAttribute("aria-current");
      }
    });
  }

  data.captions.forEach(addTrack);
  select.addEventListener("change", function () {
    tracks.forEach(function (t, i) {
      t.track.mode = String(i) === select.value ? "showing" : "disabled";
    });
    showList();
  });
  if (modeButton) {
    modeButton.addEventListener("click", function () {
      mode = mode === "timecode" ? "media" : "timecode";
      showTimes();
    });
  }
  ["timeupdate", "seeked", "play", "pause"].forEach(function (name) {
    video.addEventListener(name, highlight);
  });
  if (tracks.length) select.value = "0";
  select.dispatchEvent(new Event("change"));
  document.body.setAttribute("data-tracks", String(tracks.length));
  document.body.setAttribute("data-cues", String(cueCount));
  video.addEventListener("loadedmetadata", function () {
    status.textContent = "Video ready: " + video.duration.toFixed(2) + " s, " +
      video.videoWidth + "x" + video.videoHeight;
    status.setAttribute("data-state", "loaded");
    status.setAttribute("data-duration", String(video.duration));
  });
  video.addEventListener("error", function () {
    status.textContent = "This browser cannot play the video; open " +
      video.getAttribute("src") + " in a media player.";
    status.setAttribute("data-state", "error");
  });
})();
"""
