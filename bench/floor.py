"""The floor for the `ack` benchmark: `python -m bench.floor`.

A bare Starlette app that does the least a receiver can do (read the body,
check the bearer token, answer 202), served by the service's own server
stack (service.intake.server: uvicorn, uvloop and httptools when installed, one
process, behind the limits at the edge of service/intake/edge.py). Nothing the
service does could be faster on this machine, so the service's figures are
printed as a ratio of this one's.
"""

from __future__ import annotations

import hmac
import os
import sys
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service import logging as service_logging
from service.intake.server import Server, bind, config


def app(token: str) -> Starlette:
    expected = f"Bearer {token}".encode()

    async def deliver(request: Request) -> JSONResponse:
        await request.body()
        presented = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(presented, expected):
            return JSONResponse({"error": "unauthenticated"}, status_code=401)
        return JSONResponse({"request_id": uuid.uuid4().hex, "status": "queued"}, status_code=202)

    return Starlette(routes=[Route("/iconik/custom-action", deliver, methods=["POST"])])


def main() -> int:
    service_logging.configure("json")
    server = Server(config(app(os.environ["BEARER_TOKENS"])), bind("127.0.0.1", 0))
    return server.run_here()


if __name__ == "__main__":
    sys.exit(main())
