"""`caption-bridge` / `python -m service`: the command line."""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from collections.abc import Iterator, Sequence

import uvicorn

from service import logging as service_logging
from service.app import create_app
from service.settings import Settings, SettingsError, load_settings

log = service_logging.get_logger("service.main")


class _Server(uvicorn.Server):
    """uvicorn, plus one log line with the real address once it accepts connections.

    With PORT=0 the OS picks the port; that line is how a supervisor (or a
    test) learns it without guessing.
    """

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self._sock = sock

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGTERM/SIGINT once it has drained, so the process
        # dies "by signal" (exit 143 under Docker). A drain that completed is a
        # clean stop: forget the signal and exit 0. (Private attribute; the
        # SIGTERM test in tests/test_serve_process.py notices if it changes.)
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self._sock.getsockname()[:2]
            log.info("service.listening", host=host, port=port, url=f"http://{host}:{port}")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> int:
    app = create_app(settings)
    sock = bind(settings.host, settings.port)
    config = uvicorn.Config(
        app,
        log_config=None,  # logging is ours (service.logging), JSON and redacted
        access_log=False,
        lifespan="on",
        # SIGTERM: stop accepting, let in-flight requests finish, then exit.
        timeout_graceful_shutdown=30,
    )
    server = _Server(config, sock)
    server.run(sockets=[sock])
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="caption-bridge",
        description="Iconik 'Send to Captioning' to ready-to-open captioning project folders.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="receive Iconik deliveries over HTTP")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"caption-bridge: {exc}", file=sys.stderr)
        return 2
    service_logging.configure(settings.log_format, settings.secret_values())

    if args.command == "serve":
        return serve(settings)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
