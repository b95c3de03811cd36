"""`caption-bridge` / `python -m service`: the command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from service import logging as service_logging
from service.intake.edge import EdgeLimits
from service.intake.server import Server, bind
from service.intake.server import config as server_config
from service.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

log = service_logging.get_logger("service.main")


def _run_uvicorn(app: ASGIApp, host: str, port: int, limits: EdgeLimits | None = None) -> int:
    return Server(server_config(app, limits=limits), bind(host, port)).run_here()


def serve(settings: Settings, with_worker: bool, intake: bool = True) -> int:
    from service import compose

    app = compose.build_app(
        settings, companion="worker" if with_worker else "registry", intake=intake
    )
    return _run_uvicorn(app, settings.host, settings.port, EdgeLimits.from_settings(settings))


def worker(settings: Settings, port: int | None) -> int:
    """The worker alone, for replicas that only build bundles.

    With `--port` (or WORKER_HTTP, on PORT), it also answers /healthz,
    /readyz and /metrics there (no deliveries), for an orchestrator's probes
    and Prometheus.
    """
    if port is None and settings.worker_http:
        port = settings.port
    if port is not None:
        return serve(settings.model_copy(update={"port": port}), with_worker=True, intake=False)

    from service import compose, startup

    settings.require_iconik()

    async def main() -> None:
        async with compose.worker_alone(settings) as runner, anyio.create_task_group() as group:
            # The worker has what the check reads of the app's services (settings, queue).
            startup.check_in_background(group, runner, runner.storage, runner.iconik)

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        log.info("worker.stopping", signal=signal.Signals(signum).name)
                        group.cancel_scope.cancel()
                        return

            group.start_soon(stop_on_signal)
            group.start_soon(runner.run)

    anyio.run(main)
    return 0


def register(settings: Settings, args: argparse.Namespace, remove: bool) -> int:
    from service import compose
    from service.commands import register as wiring
    from service.commands import register_status as status_view

    problems = wiring.public_url_problems(
        args.public_url, allow_http=remove or getattr(args, "allow_http", False)
    )
    if not remove and not settings.bearer_tokens:
        problems.append(
            "BEARER_TOKENS must be set: Iconik can only send a static "
            "'Authorization: Bearer' header, and register puts the first token there"
        )
    if not args.dry_run:
        problems += [
            f"{name} must be set to call Iconik"
            for name, value in (
                ("ICONIK_APP_ID", settings.iconik_app_id),
                ("ICONIK_AUTH_TOKEN", settings.iconik_auth_token),
            )
            if not value
        ]
    if problems:
        for problem in problems:
            print(f"caption-bridge {args.command}: {problem}", file=sys.stderr)
        return 2
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
            print(status_view.describe(settings.caption_status_field))
        else:
            print(
                f"  delete  every '{wiring.ACTION_TITLE}' action and '{wiring.WEBHOOK_PREFIX}*' "
                f"webhook pointing at {args.public_url.rstrip('/')}"
            )
        return 0

    async def run() -> None:
        # A person waits: one retry, then the reason. A few calls: this
        # process's own rate limit, not the replicas' shared budget (nor its database).
        async with compose.iconik_client(settings, shared_budget=False, max_attempts=2) as iconik:
            if remove:
                steps = await wiring.plan_unregister(iconik, args.public_url)
            else:
                plan = await wiring.plan_register(
                    iconik,
                    actions,
                    webhooks,
                    replace=args.replace_url,
                    app_id=settings.iconik_app_id,
                )
                steps = plan.steps
                for warning in plan.warnings():
                    print(warning, file=sys.stderr)
            for step in steps:
                print(step.describe())
            await wiring.apply(iconik, steps)
            if not remove:  # the captioning-state field (service/work/caption_status.py)
                made = await status_view.ensure(iconik, settings.caption_status_field)
                for line in made.lines(settings.caption_status_field):
                    print(line)
            if remove and not steps:
                print("nothing to remove")

    try:
        anyio.run(run)
    except wiring.RegisterError as exc:
        print(f"caption-bridge {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


def status(args: argparse.Namespace) -> int:
    """Read-only: needs only QUEUE_URL, opens the queue read-only, never creates it."""
    import json

    from service.settings import load_queue_settings
    from service.status.reader import QueueNotReadable, open_reader
    from service.status.report import queue_report, render_queue, render_request, request_report

    if args.work and args.request_id:
        print("caption-bridge status: --work lists the whole queue's open work", file=sys.stderr)
        return 2
    queue_url = load_queue_settings().queue_url
    report: dict[str, Any] | None
    try:
        with open_reader(queue_url) as reader:
            if args.work:
                from service.status.work import render_work, work_report

                report = work_report(reader, limit=args.limit, offset=args.offset)
                lines = render_work(report)
            elif args.request_id:
                report = request_report(
                    reader, args.request_id, limit=args.limit, offset=args.offset
                )
                if report is None:
                    print(f"no request {args.request_id} in {reader.where}", file=sys.stderr)
                    return 1
                lines = render_request(report, with_tasks=args.tasks)
            else:
                report = queue_report(reader, limit=args.limit, offset=args.offset)
                lines = render_queue(report)
    except QueueNotReadable as exc:
        print(f"caption-bridge status: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(lines))
    return 0


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _closed_pipe_is_fine(command: Callable[[], int]) -> int:
    """Run a command whose output may go to `head`: a reader that stopped
    reading ends the output quietly, not in a BrokenPipeError traceback."""
    try:
        code = command()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


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
    demo_cmd = commands.add_parser(
        "demo", help="simulator + service on loopback, one click, print bundles"
    )
    demo_cmd.add_argument(
        "--storage-url",
        help="where the bundles go (default: a new temporary folder, never STORAGE_URL)",
    )
    demo_cmd.add_argument(
        "--queue-url", help="the demo's queue (default: in the temporary folder, never QUEUE_URL)"
    )
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
    reg_cmd.add_argument(
        "--replace-url",
        action="store_true",
        help="move what an earlier register made for another public URL here, "
        "instead of adding a second set",
    )
    reg_cmd.add_argument(
        "--allow-http",
        action="store_true",
        help="accept an http:// public URL (tests on a private network only)",
    )
    unreg_cmd = commands.add_parser("unregister", help="remove what `register` created")
    unreg_cmd.add_argument("--public-url", required=True)
    unreg_cmd.add_argument("--dry-run", action="store_true")
    status_cmd = commands.add_parser(
        "status", help="a request's state, or the queue and recent failures"
    )
    status_cmd.add_argument("request_id", nargs="?")
    status_cmd.add_argument("--json", action="store_true", help="one JSON document, for machines")
    status_cmd.add_argument(
        "--limit", type=_count, default=20, help="failures (and tasks) listed (default 20)"
    )
    status_cmd.add_argument("--offset", type=_count, default=0, help="skip this many first")
    status_cmd.add_argument(
        "--tasks", action="store_true", help="with REQUEST_ID: also list its tasks (a page)"
    )
    status_cmd.add_argument(
        "--work", action="store_true", help="open work by due date, what is overdue (a page)"
    )
    health_cmd = commands.add_parser(
        "health",
        help="exit 0 if the service on this machine answers /healthz (the image's HEALTHCHECK)",
    )
    health_cmd.add_argument(
        "--url", help="what to ask (default: http://127.0.0.1:$PORT/healthz, PORT as the service)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command in ("simulator", "demo"):
        from service.commands import simulator as simulator_cli

        if not simulator_cli.installed():  # as in the image, which has only the service
            print(simulator_cli.NOT_INSTALLED, file=sys.stderr)
            return 2
    if args.command == "simulator":
        service_logging.configure("console")
        return simulator_cli.run(args.port, args.large_proxy_mb, sys.stdout)
    if args.command == "demo":
        from service.commands.demo import DemoPlaces, run_demo

        # The demo brings its own credentials and Iconik; only tuning is read
        # from the environment. Storage and queue: the flags, or its own folder.
        places = DemoPlaces.choose(args.storage_url, args.queue_url)
        try:
            base = load_settings(
                storage_url=places.storage_url,
                queue_url=places.queue_url,
                bearer_tokens="demo-placeholder",
            )
        except SettingsError as exc:
            print(f"caption-bridge: {exc}", file=sys.stderr)
            return 2
        print(places.describe(), flush=True)
        service_logging.configure("console", level=30)
        return anyio.run(run_demo, base)

    if args.command == "health":  # reads only PORT: no .env secrets needed to probe
        try:
            from service.commands.health import check

            return check(args.url)
        except SettingsError as exc:
            print(f"caption-bridge health: {exc}", file=sys.stderr)
            return 2
    if args.command == "status":
        # Read-only, needs only QUEUE_URL; output may go to `head`.
        try:
            return _closed_pipe_is_fine(lambda: status(args))
        except SettingsError as exc:
            print(f"caption-bridge: {exc}", file=sys.stderr)
            return 2

    try:
        settings = load_settings()
        # register/unregister talk to a person: warnings only, the command prints the rest.
        quiet = {"level": 30} if args.command in ("register", "unregister") else {}
        service_logging.configure(settings.log_format, settings.secret_values(), **quiet)
        if args.command == "serve":
            return serve(settings, with_worker=not args.no_worker)
        if args.command == "worker":
            return worker(settings, args.port)
        if args.command in ("register", "unregister"):
            return register(settings, args, remove=args.command == "unregister")
    except SettingsError as exc:
        print(f"caption-bridge: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
