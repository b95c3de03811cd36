"""A JSON object sent as a request body in pieces, for one large string value in it.

A caption track goes to Iconik as the `content` of a JSON object. Encoded
the usual way, the track's text is held three times at once (the text, the
JSON text, its bytes); sent from here, its escaped bytes are made one piece
at a time as the body streams, so the request adds one piece to the text
it sends. Each iteration starts over, so a retried or redirected request
sends the same bytes again; the length is known beforehand, so the body
goes with a Content-Length, as any other.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

PIECE_CHARS = 64 * 1024


class JsonStream:
    def __init__(self, fields: dict[str, Any], key: str, text: str) -> None:
        """`fields` with `key` set to `text` (which is sent in pieces)."""
        self.fields, self.key, self.text = fields, key, text
        self.length = sum(len(piece) for piece in self._pieces())

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Content-Length": str(self.length)}

    def _pieces(self) -> Iterator[bytes]:
        head = json.dumps(self.fields, ensure_ascii=False)[:-1]  # without its closing brace
        comma = ", " if self.fields else ""
        yield f'{head}{comma}{json.dumps(self.key)}: "'.encode()
        for start in range(0, len(self.text), PIECE_CHARS):
            # A str is sliced between code points: every piece escapes on its own.
            piece = self.text[start : start + PIECE_CHARS]
            yield json.dumps(piece, ensure_ascii=False)[1:-1].encode()
        yield b'"}'

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces():
            yield piece

    def value(self) -> dict[str, Any]:
        """The object it sends (for tests and logs of small bodies)."""
        return {**self.fields, self.key: self.text}
