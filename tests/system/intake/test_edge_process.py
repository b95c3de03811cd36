"""Nobody without a token can stall the receiver: the real `serve`, under attack.

`caption-bridge serve` runs as the systemd unit would (1024 file handles,
`prlimit`); the hostile clients are bench/edge.py's, in a process of their
own on other loopback addresses: an endless header, 1,100 idle connections
and a body at 1 byte/s. `python -m bench edge` runs the same for 30 s.
"""

from __future__ import annotations

import pytest

from bench.edge import PRLIMIT, attacking, clicks
from tests.support.servers import service_env, service_process
from tests.support.service import make_settings

SECONDS = 3.0  # under attack; the benchmark does 30


@pytest.mark.slow
def test_while_hostile_clients_press_on_the_port_every_signed_click_gets_202_within_1_s(
    tmp_path,
):
    settings = make_settings(tmp_path)
    env = service_env(
        settings,
        tmp_path / "bundles",
        PORT="0",
        # Short deadlines, so that within the test the hostile clients are
        # also timed out and come back, not only capped.
        HEADER_TIMEOUT_SECONDS="1",
        BODY_TIMEOUT_SECONDS="1",
    )
    with service_process("serve", "--no-worker", env=env, cwd=tmp_path, prefix=PRLIMIT) as serve:
        port = serve.wait_for("service.listening")["port"]
        with attacking(port) as counts:
            figures = clicks(port, SECONDS)

    assert figures["failures"] == [], figures
    assert figures["clicks"] >= 10
    # Each hostile client was in play all along: cut off, and back again.
    assert counts["header_cut"] >= 1, counts
    assert counts["idle_closed"] >= 100, counts
    assert counts["trickle_cut"] >= 1, counts
