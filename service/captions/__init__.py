"""Captions: a captioner's file read, checked and made WebVTT. Pure.

`track` is the surface (`read()` a delivered file into a `Track`, or
`Refused` with every problem and its line); `reader` is its one bounded
pass, over `lines` (timing lines) and `srt` (SubRip), with `text` for cue
text and settings, `store` for compact cues and `timecode` for a media
start timecode. `house_style` reports readability; it never refuses.
"""
