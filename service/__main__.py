"""`caption-bridge` / `python -m service`: the command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

import anyio

from service import logging as service_logging
from service.app import create_app
from service.edge import EdgeLimits
from service.server import Server, bind
from service.server import config as server_config
from service.settings import Settings, SettingsError, load_settings

log = service_logging.get_logger("service.main")


def _run_uvicorn(app: object, host: str, port: int, limits: EdgeLimits | None = None) -> int:
    return Server(server_config(app, limits=limits), bind(host, port)).run_here()


def serve(settings: Settings, with_worker: bool, intake: bool = True) -> int:
    from service.registry import filled_in_background
    from service.storage import open_storage
    from service.worker import background

    storage = open_storage(settings.storage_url)
    if with_worker:
        settings.require_iconik()
    app = create_app(
        settings,
        readiness={"storage": storage.ping},
        background=background(settings, storage) if with_worker else filled_in_background(storage),
        intake=intake,
    )
    return _run_uvicorn(app, settings.host, settings.port, EdgeLimits.from_settings(settings))


def worker(settings: Settings, port: int | None) -> int:
    """The worker alone, for replicas that only build bundles.

    With `--port`, it also answers /healthz, /readyz and /metrics there (no
    deliveries), for an orchestrator's probes and Prometheus.
    """
    if port is not None:
        return serve(settings.model_copy(update={"port": port}), with_worker=True, intake=False)

    from service.metrics import Metrics
    from service.queue import queue_for
    from service.storage import open_storage
    from service.worker import Worker, iconik_client

    settings.require_iconik()

    async def main() -> None:
        queue = queue_for(settings)
        await queue.open()
        try:
            async with iconik_client(settings) as iconik, anyio.create_task_group() as group:
                runner = Worker(
                    settings, queue, iconik, open_storage(settings.storage_url), metrics=Metrics()
                )

                async def stop_on_signal() -> None:
                    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                        async for signum in signals:
                            log.info("worker.stopping", signal=signal.Signals(signum).name)
                            group.cancel_scope.cancel()
                            return

                group.start_soon(stop_on_signal)
                group.start_soon(runner.run)
        finally:
            await queue.close()

    anyio.run(main)
    return 0


def simulator(port: int, large_proxy_mb: float) -> int:
    from service.simulator import Simulator

    app_id = os.environ.get("ICONIK_APP_ID") or "simulator-app-id"
    token = os.environ.get("ICONIK_AUTH_TOKEN") or "simulator-auth-token"
    sim = Simulator(app_id, token)
    seeded = sim.seed(large_proxy_bytes=int(large_proxy_mb * 1024 * 1024))
    log.info("simulator.seeded", assets=seeded.all, metadata_view_id=seeded.view_id, app_id=app_id)
    return _run_uvicorn(sim.app(), "127.0.0.1", port)


def register(settings: Settings, args: argparse.Namespace, remove: bool) -> int:
    from service import register as wiring
    from service.worker import iconik_client

    if not args.public_url.startswith(("https://", "http://")):
        raise SettingsError("--public-url must be the http(s) URL Iconik reaches this service at")
    if not remove and not settings.bearer_tokens:
        raise SettingsError(
            "BEARER_TOKENS must be set: Iconik can only send a static "
            "'Authorization: Bearer' header, and register puts the first token there"
        )
    token = settings.bearer_tokens[0].get_secret_value() if settings.bearer_tokens else ""
    actions = wiring.desired_actions(
        args.public_url,
        token,
        saved_search=getattr(args, "saved_search", False),
        metadata_view=getattr(args, "metadata_view", None),
    )
    webhooks = wiring.desired_webhooks(args.public_url, token)
    if args.dry_run:
        print("dry run: Iconik is not called. Wanted state (existing matches are updated):")
        if not remove:
            for wanted in (*actions, *webhooks):
                what = "custom action" if "context" in wanted else "webhook"
                label = wanted.get("context") or wanted.get("name")
                print(f"  ensure  {what} {label} -> {wanted['url']}")
        else:
            print(
                f"  delete  every '{wiring.ACTION_TITLE}' action and '{wiring.WEBHOOK_PREFIX}*' "
                f"webhook pointing at {args.public_url.rstrip('/')}"
            )
        return 0
    settings.require_iconik()

    async def run() -> None:
        async with iconik_client(settings) as iconik:
            if remove:
                steps = await wiring.plan_unregister(iconik, args.public_url)
            else:
                steps = await wiring.plan_register(iconik, actions, webhooks)
            for step in steps:
                print(step.describe())
            await wiring.apply(iconik, steps)
            if remove and not steps:
                print("nothing to remove")

    anyio.run(run)
    return 0


def status(settings: Settings, request_id: str | None) -> int:
    import json

    from service.queue import describe_queue_url, queue_for
    from service.status import request_summary

    async def run() -> int:
        queue = queue_for(settings)
        await queue.open()
        try:
            if request_id:
                found = await request_summary(queue, request_id)
                if found is None:
                    where = describe_queue_url(settings.queue_url)
                    print(f"no request {request_id} in {where}", file=sys.stderr)
                    return 1
                print(json.dumps(found, indent=2))
                return 0
            where = describe_queue_url(settings.queue_url)
            print(f"queue {where}: {await queue.backlog()} task(s) waiting or running")
            failures = await queue.recent_failures()
            print(f"recent failures ({len(failures)}):" if failures else "no failed tasks")
            for f in failures:
                print(
                    f"  request {f['request_id']}  asset {f['asset_id']}  "
                    f"after {f['attempts']} attempt(s): {f['last_error']}"
                )
            return 0
        finally:
            await queue.close()

    return anyio.run(run)


def build_parser() -> argparse.ArgumentParser:
    """The command line, also read by the tests of the deploy files."""
    parser = argparse.ArgumentParser(
        prog="caption-bridge",
        description="Iconik 'Send to Captioning' to ready-to-open captioning project folders.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="receive Iconik deliveries (and build bundles)")
    serve_cmd.add_argument(
        "--no-worker",
        action="store_true",
        help="only receive and store deliveries; run `caption-bridge worker` elsewhere",
    )
    worker_cmd = commands.add_parser(
        "worker", help="build bundles from the queue, without the HTTP receiver"
    )
    worker_cmd.add_argument(
        "--port",
        type=int,
        help="also answer /healthz, /readyz and /metrics on this port (no deliveries)",
    )
    commands.add_parser("demo", help="simulator + service on loopback, one click, print bundles")
    sim_cmd = commands.add_parser("simulator", help="a local Iconik stand-in with seeded assets")
    sim_cmd.add_argument("--port", type=int, default=8090)
    sim_cmd.add_argument("--large-proxy-mb", type=float, default=64)
    reg_cmd = commands.add_parser(
        "register", help="create or update the custom actions and webhooks in Iconik"
    )
    reg_cmd.add_argument(
        "--public-url",
        required=True,
        help="where Iconik reaches this service, e.g. https://captions.example.com",
    )
    reg_cmd.add_argument(
        "--saved-search", action="store_true", help="also add the action to saved searches"
    )
    reg_cmd.add_argument("--metadata-view", help="metadata view id shown as the action's form")
    reg_cmd.add_argument("--dry-run", action="store_true", help="print the plan; call nothing")
    unreg_cmd = commands.add_parser("unregister", help="remove what `register` created")
    unreg_cmd.add_argument("--public-url", required=True)
    unreg_cmd.add_argument("--dry-run", action="store_true")
    status_cmd = commands.add_parser(
        "status", help="a request's state, or the queue and recent failures"
    )
    status_cmd.add_argument("request_id", nargs="?")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "simulator":
        service_logging.configure("console")
        return simulator(args.port, args.large_proxy_mb)
    if args.command == "demo":
        from service.demo import run_demo
        from service.settings import Settings as _Settings

        # The demo brings its own credentials; only storage, queue and tuning are read.
        os.environ.setdefault("BEARER_TOKENS", "demo-placeholder")
        try:
            base = load_settings()
        except SettingsError as exc:
            print(f"caption-bridge: {exc}", file=sys.stderr)
            return 2
        assert isinstance(base, _Settings)
        service_logging.configure("console", level=30)
        return anyio.run(run_demo, base)

    try:
        settings = load_settings()
        service_logging.configure(settings.log_format, settings.secret_values())
        if args.command == "serve":
            return serve(settings, with_worker=not args.no_worker)
        if args.command == "worker":
            return worker(settings, args.port)
        if args.command in ("register", "unregister"):
            return register(settings, args, remove=args.command == "unregister")
        if args.command == "status":
            return status(settings, args.request_id)
    except SettingsError as exc:
        print(f"caption-bridge: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
