"""`caption-bridge simulator`: the Iconik stand-in on loopback, and how to use it.

The simulator itself is the `simulator` package, beside this one (not in
the image: then `installed()` is False and the command says so).

It takes its application id and token from the environment or `.env` (as
the service does), so a service started from the same directory with
`ICONIK_URL` pointing at it is accepted; and it prints the settings to use.
A token that came from the configuration is never printed (it may be a real
one); the simulator's own default, `simulator-auth-token`, is.
"""

from __future__ import annotations

import os
from typing import TextIO

from pydantic_settings import BaseSettings

from service import logging as service_logging
from service.intake.server import Server, bind
from service.intake.server import config as server_config
from service.settings import Settings

DEFAULT_APP_ID = "simulator-app-id"
DEFAULT_TOKEN = "simulator-auth-token"  # noqa: S105 (the simulator's own, not a secret)
DEFAULT_USER_TOKEN = "simulator-user-token"  # noqa: S105 (a simulated user's)

log = service_logging.get_logger("service.commands.simulator")

# The image ships the service only; the simulator comes with a source checkout.
NOT_INSTALLED = (
    "caption-bridge: the Iconik simulator is not installed here (it comes with a "
    "source checkout, `pip install -e .`; the image has the service only)"
)


def installed() -> bool:
    """Whether the `simulator` package (beside `service`) can be imported."""
    try:
        import simulator  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "simulator":
            raise
        return False
    return True


class SimulatorSettings(BaseSettings):
    """The credentials the simulator accepts, read like the service's own."""

    model_config = Settings.model_config

    iconik_url: str | None = None
    iconik_app_id: str | None = None
    iconik_auth_token: str | None = None


def instructions(url: str, settings: SimulatorSettings, seeded_assets: list[str]) -> list[str]:
    """What to set so that `caption-bridge serve` (or worker, register) uses this simulator."""
    app_id = settings.iconik_app_id or DEFAULT_APP_ID
    if settings.iconik_auth_token:
        token = "(the ICONIK_AUTH_TOKEN already in your environment or .env)"  # noqa: S105
    else:
        token = DEFAULT_TOKEN
    lines = [
        f"Iconik simulator on {url}, with {len(seeded_assets)} seeded assets.",
        "Point the service at it (environment or .env, beside the other settings):",
        f"  ICONIK_URL={url}",
        f"  ICONIK_APP_ID={app_id}",
        f"  ICONIK_AUTH_TOKEN={token}",
        "  ALLOW_ORIGINAL_MEDIA=true   # one seeded asset has no proxy: its original is "
        "bundled once the wait for a proxy is over...",
        "  PROXY_WAIT_SECONDS=0        # ...which is 1 h by default (without both, it "
        "fails after that hour)",
    ]
    if settings.iconik_url and settings.iconik_url.rstrip("/") != url:
        lines.append(
            f"Note: ICONIK_URL is {settings.iconik_url} here now; a service reading "
            "these settings calls that, not the simulator."
        )
    lines.append(
        f'Clicks sent by hand carry "auth_token": "{DEFAULT_USER_TOKEN}", a user who may '
        "read every seeded asset (SIMULATOR_USER_TOKEN sets another)."
    )
    return [*lines, f"Seeded asset ids: {' '.join(seeded_assets)}"]


def run(port: int, large_proxy_mb: float, out: TextIO) -> int:
    from simulator import Simulator

    settings = SimulatorSettings()
    app_id = settings.iconik_app_id or DEFAULT_APP_ID
    sim = Simulator(app_id, settings.iconik_auth_token or DEFAULT_TOKEN)
    # The auth_token of clicks sent by hand: a user who may read every seeded asset.
    sim.add_user(os.environ.get("SIMULATOR_USER_TOKEN") or DEFAULT_USER_TOKEN)
    seeded = sim.seed(large_proxy_bytes=int(large_proxy_mb * 1024 * 1024))
    log.info("simulator.seeded", assets=seeded.all, metadata_view_id=seeded.view_id, app_id=app_id)

    def say_how() -> None:  # once it accepts connections: what it prints works at once
        if server.started:
            print("\n".join(instructions(server.url, settings, seeded.all)), file=out, flush=True)

    server = Server(server_config(sim.app()), bind("127.0.0.1", port), on_ready=say_how)
    return server.run_here()
