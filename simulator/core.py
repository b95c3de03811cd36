"""A local stand-in for Iconik, over real HTTP, for the demo and the tests.

It serves the API paths the client uses, with Iconik's response shapes (the
tests validate them against Iconik's published OpenAPI schemas), and
`/storage/` paths for the signed download URLs, outside `/API`, that want
no credentials, like the cloud storage real signed URLs point to. Those
are on the simulator's own origin unless `storage_base` names another
server running `storage_app()` (as real storage is another origin).

`Simulator` is the state (state.py: plain Python that tests change
directly) with its HTTP face: each endpoint module (assets, actions,
webhooks, tracks, users, views, metadata) lists its `ENDPOINTS`, functions
of the state and the request, and every one of them is reached through
api.py's door (recording, faults, rate limits, tokens).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator import actions, assets, metadata, storage, tracks, users, views, webhooks
from simulator import seed as seed_data
from simulator.api import gated
from simulator.seed import Seeded
from simulator.state import IconikState

# Each module's endpoints, in the order they are matched.
_API = (assets, actions, webhooks, tracks, users, views, metadata)


class Simulator(IconikState):
    def app(self) -> Starlette:
        """The simulated Iconik: its API, and the signed download URLs."""
        routes = [
            Route(path, gated(self, handler), methods=methods)
            for module in _API
            for path, handler, methods in module.ENDPOINTS
        ]
        return Starlette(routes=[*routes, self._storage_route()])

    def storage_app(self) -> Starlette:
        """Only the signed download URLs, to serve on an origin of their own."""
        return Starlette(routes=[self._storage_route()])

    def _storage_route(self) -> Route:
        async def download(request: Request) -> Response:
            return await storage.download(self, request)

        return Route("/storage/{key:path}", download, methods=["GET"])

    def seed(self, *, large_proxy_bytes: int = 8 * 1024 * 1024) -> Seeded:
        """The assets the demo and the end-to-end tests work on (seed.py)."""
        return seed_data.seed(self, large_proxy_bytes=large_proxy_bytes)

    def add_tiny_assets(self, count: int, proxy_bytes: int = 4) -> list[str]:
        """`count` assets with a proxy of a few bytes each: many bundles, little I/O."""
        return seed_data.add_tiny_assets(self, count, proxy_bytes)
