// Reads a JSON list of WebVTT texts on stdin; writes, for each, what the
// W3C validator's parser (webvtt-parser) reads: its errors and its cues.
// Structural errors come from the file parse ("metadata" mode: cue text is
// not parsed); `text_errors` from parsing each cue's text as subtitles.
const { WebVTTParser } = require("webvtt-parser");
const entities = require("webvtt-parser/html-entities.json");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const results = JSON.parse(input).map((text) => {
    const structure = new WebVTTParser(entities).parse(text, "metadata");
    const full = new WebVTTParser(entities).parse(text, "subtitles");
    const structural = new Set(structure.errors.map((e) => `${e.line}:${e.message}`));
    return {
      errors: structure.errors.map((e) => [e.line, e.message]),
      text_errors: full.errors
        .filter((e) => !structural.has(`${e.line}:${e.message}`))
        .map((e) => [e.line, e.message]),
      cues: structure.cues.map((c) => ({
        id: c.id,
        start_ms: Math.round(c.startTime * 1000),
        end_ms: Math.round(c.endTime * 1000),
        text: c.text,
      })),
    };
  });
  process.stdout.write(JSON.stringify(results));
});
