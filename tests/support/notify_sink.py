"""A notification sink for tests: a real HTTP server on loopback.

`/hook` takes the webhook's POSTs and checks each one's Standard Webhooks
signature with the `standardwebhooks` package (an implementation of the
spec independent of ours); `/apprise` takes what Apprise's `json://` target
posts. It can be stopped (connections refused) and started again on the
same port, answer 503, or hold requests until released; only requests it
answered 2xx count as received.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, base64


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    valid: bool  # the signature checked out (webhook), or not signed (apprise)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")


class Sink:
    def __init__(self, secret: str = SECRET) -> None:
        self.verifier = Webhook(secret)
        self.received: list[Received] = []  # answered 2xx
        self.seen: list[Received] = []  # every request that reached the sink
        self.status = 200
        self.failing: set[str] = set()  # webhook ids answered 500 whatever `status` is
        # Down without giving up the port (no other test's server can take it
        # meanwhile): each connection is closed without an answer.
        self.dropping = False
        self.hold = threading.Event()
        self.hold.set()  # not holding
        self.held = threading.Event()  # a request is being held
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Sink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                valid = True
                if self.path.startswith("/hook"):
                    try:
                        sink.verifier.verify(body, headers)
                    except WebhookVerificationError:
                        valid = False
                got = Received(self.path, headers, body, valid)
                with sink._changed:
                    sink.seen.append(got)
                    sink._changed.notify_all()
                if sink.dropping:
                    self.close_connection = True
                    return
                # The answer is decided on arrival, whatever changes while it is held.
                status = 500 if headers.get("webhook-id") in sink.failing else sink.status
                if not sink.hold.is_set():
                    sink.held.set()
                    sink.hold.wait(60)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
                if 200 <= status < 300:
                    with sink._changed:
                        sink.received.append(got)
                        sink._changed.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until `start()` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_until(self, done: Callable[[Sink], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"sink: not within {timeout}s; received "
                        f"{[(r.path, r.id) for r in self.received]}"
                    )
                self._changed.wait(left)

    def hooks(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/hook")]

    def apprise(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/apprise")]
