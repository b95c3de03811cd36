"""A real `caption-bridge serve` beside the simulator over HTTP, for tests
that need the whole process (its scan loop, its stops)."""

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2

from simulator import Simulator
from tests.support.servers import running, service_env, service_process
from tests.support.service import ICONIK_TOKEN, PAYLOAD_AUTH_TOKEN, make_settings, signed
from tests.support.stack import APP_ID


@dataclass
class Served:
    sim: Simulator
    seeded: Any
    serve: Any
    base: str

    def post(self, path, body):
        answer = httpx2.post(self.base + path, content=body, headers=signed(body))
        assert answer.status_code in (200, 202), answer.text
        return answer.json()


@contextmanager
def real_serve(tmp_path, storage, *, queue_url=None, **env):
    """The simulator over HTTP and a real `caption-bridge serve` beside it,
    looking at the out-trays every 0.2 s."""
    sim = Simulator(APP_ID, ICONIK_TOKEN)
    sim.add_user(PAYLOAD_AUTH_TOKEN)  # whose auth_token the clicks carry
    seeded = sim.seed(large_proxy_bytes=1024)
    with running(sim.app()) as sim_url:
        queue = {"queue_url": queue_url} if queue_url else {}
        settings = make_settings(tmp_path, iconik_url=sim_url, **queue)
        env = service_env(settings, storage, **{"PORT": "0", "DELIVER_SCAN_SECONDS": "0.2", **env})
        with service_process("serve", env=env, cwd=tmp_path) as serve:
            port = serve.wait_for("service.listening")["port"]
            yield Served(sim, seeded, serve, f"http://127.0.0.1:{port}")
