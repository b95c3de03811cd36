"""The deploy files speak the service's language: settings, commands and routes that exist."""

import json
import re
from pathlib import Path

import pytest
import yaml

from service.__main__ import build_parser
from service.intake.app import create_app
from service.settings import Settings
from tests.support.paths import REPOSITORY
from tests.support.service import make_settings

REPO = REPOSITORY
DEPLOY = REPO / "deploy"
SETTINGS = {name.upper() for name in Settings.model_fields}
# boto3's own configuration, which the contract leaves to it.
AWS = {"AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _routes(command: list[str], tmp_path) -> set[str]:
    args = build_parser().parse_args(command)  # fails the test on an unknown command
    intake = args.command == "serve"
    app = create_app(make_settings(tmp_path), intake=intake)
    return {route.path for route in app.routes}


def _compose_services() -> dict[str, dict]:
    return _documents(DEPLOY / "compose.yaml")[0]["services"]


def _bridge_containers():
    for name, service in _compose_services().items():
        if "build" in service:
            probe = service["healthcheck"]["test"][-1]
            path = "/" + probe.split("/", 3)[3].split("'")[0]
            yield name, service["command"], service["environment"], [path]
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for document in _documents(path):
            if document["kind"] != "Deployment":
                continue
            for container in document["spec"]["template"]["spec"]["containers"]:
                probes = [
                    container[probe]["httpGet"]["path"]
                    for probe in ("livenessProbe", "readinessProbe")
                ]
                yield container["name"], container["args"], {}, probes


def test_every_variable_the_deploy_files_set_is_a_setting():
    names = set()
    for _, _, environment, _ in _bridge_containers():
        names |= set(environment)
    for path in (DEPLOY / "kubernetes").glob("*.yaml"):
        for document in _documents(path):
            if document["kind"] in ("ConfigMap", "Secret"):
                names |= set(document.get("data") or document.get("stringData") or {})
    assert names, "no settings found in deploy/"
    assert names - SETTINGS - AWS == set()


@pytest.mark.parametrize("container", list(_bridge_containers()), ids=lambda c: c[0])
def test_every_command_exists_and_every_probe_is_a_route(container, tmp_path):
    name, command, _, probes = container
    routes = _routes(command, tmp_path)
    assert set(probes) <= routes, (name, probes)
    assert {"/healthz", "/readyz"} <= set(probes) or probes == ["/readyz"], name


def test_receivers_take_deliveries_and_workers_do_not(tmp_path):
    commands = {tuple(c[1]) for c in _bridge_containers()}
    assert ("serve", "--no-worker") in commands
    assert ("worker", "--port", "8080") in commands
    assert "/iconik/webhook" in _routes(["serve", "--no-worker"], tmp_path)
    assert "/iconik/webhook" not in _routes(["worker", "--port", "8080"], tmp_path)


def test_file_handle_limits_leave_room_for_every_connection_the_service_keeps():
    # The service keeps at most 3/4 of its file handle limit for connections
    # (service/intake/edge.py); the deploy files must not make that less than MAX_CONNECTIONS.
    wanted = Settings.model_fields["max_connections"].default
    unit = (DEPLOY / "caption-bridge.service").read_text()
    [limit] = [line for line in unit.splitlines() if line.startswith("LimitNOFILE=")]
    assert int(limit.removeprefix("LimitNOFILE=")) * 3 // 4 >= wanted
    for name, service in _compose_services().items():
        if "build" in service:
            assert service["ulimits"]["nofile"]["soft"] * 3 // 4 >= wanted, name


def test_behind_a_proxy_idle_connections_outlive_the_proxys_own_timeout():
    # nginx and the cloud load balancers keep idle upstream connections for 60 s:
    # the service closing first races the proxy's next request on that connection.
    for _, _, environment, _ in _bridge_containers():
        if "KEEP_ALIVE_TIMEOUT_SECONDS" in environment:
            assert float(environment["KEEP_ALIVE_TIMEOUT_SECONDS"]) > 60
    [configmap] = _documents(DEPLOY / "kubernetes" / "configmap.yaml")
    assert float(configmap["data"]["KEEP_ALIVE_TIMEOUT_SECONDS"]) > 60


def test_the_build_context_holds_only_what_the_image_copies():
    """Docker's rules, read as Docker reads them (last matching line wins;
    `!` re-includes): the context is the Dockerfile's COPY sources only,
    never .env, .venv, data/, bundles/ or the tests."""
    import fnmatch

    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def excluded(path: str) -> bool:
        out = False
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for rule in rules:
            negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
            # `**` is any number of folders, none included
            forms = {pattern, pattern.replace("**/", ""), pattern.replace("**", "*")}
            if any(fnmatch.fnmatch(p, form) for p in prefixes for form in forms):
                out = not negate
        return out

    for kept in (
        "pyproject.toml",
        "README.md",
        "service/__main__.py",
        "service/queue/postgres.sql",
    ):
        assert not excluded(kept), kept
    for left_out in (
        ".env",
        ".venv/bin/python",
        "data/queue.db",
        "bundles/x/project.json",
        "tests/unit/test_deploy.py",
        "simulator/core.py",  # the Iconik simulator is for the demo and tests, not the image
        ".git/HEAD",
        "service/__pycache__/app.pyc",
    ):
        assert excluded(left_out), left_out
    copied = re.findall(r"^COPY (.+) \S+$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert not excluded(source.rstrip("/")), source


def test_the_locks_pin_every_dependency_pyproject_names():
    """requirements.lock (the image) and requirements-dev.lock (make, CI) pin
    each dependency of pyproject.toml to one version with its hashes."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        found = set()
        for requirement in requirements:
            name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
            found.add(name.lower().replace("_", "-"))
        return found

    def pinned(lock: str) -> dict[str, str]:
        text = (REPO / lock).read_text()
        assert "--index-url" not in text and "--find-links" not in text  # no machine's paths
        pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.MULTILINE))
        assert len(pins) == text.count("==") and text.count("--hash=sha256:") >= len(pins)
        return {name.lower().replace("_", "-"): version for name, version in pins.items()}

    runtime = pinned("requirements.lock")
    assert names(project["dependencies"]) <= set(runtime)
    dev = pinned("requirements-dev.lock")
    assert names(project["dependencies"] + project["optional-dependencies"]["dev"]) <= set(dev)
    assert all(dev[name] == version for name, version in runtime.items() if name in dev)
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "--require-hashes -r requirements-dev.lock" in (REPO / "Makefile").read_text()


# Pinned images, one healthcheck, instructions that run as written ------------

DIGEST = r"@sha256:[0-9a-f]{64}"


def test_the_base_image_is_pinned_by_digest_and_says_how_to_update_it():
    dockerfile = (REPO / "Dockerfile").read_text()
    [base] = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert re.fullmatch(rf"python:3\.11-slim{DIGEST}", base), base
    assert "imagetools inspect" in dockerfile and "Dependabot" in dockerfile


def test_every_compose_image_is_pinned_by_release_tag_and_digest():
    for name, service in _compose_services().items():
        if "image" not in service:
            continue
        image = service["image"]
        match = re.fullmatch(rf"([\w./-]+):([\w.-]+)({DIGEST})", image)
        assert match, (name, image)
        tag = match.group(2)
        # A release, not a channel: postgres:16.15, RELEASE.2025-...; never 16 or latest.
        assert re.search(r"\d+\.\d+|RELEASE\.\d{4}", tag), (name, tag)


def test_the_image_healthcheck_is_a_command_and_fits_every_command_the_image_runs():
    dockerfile = (REPO / "Dockerfile").read_text()
    [check] = re.findall(r"^HEALTHCHECK [^[]*?CMD (\[[^]]*\])", dockerfile, re.MULTILINE)
    command = json.loads(check)
    assert command[0] == "caption-bridge"  # the image's entry point (pyproject's script)
    build_parser().parse_args(command[1:])  # an unknown command fails here
    [block] = re.findall(r"^ENV ((?:.*\\\n)*.*)$", dockerfile, re.MULTILINE)
    environment = dict(re.findall(r"(\w+)=(\S+)", block))
    assert set(environment) <= SETTINGS, set(environment) - SETTINGS
    # `caption-bridge health` asks PORT; a worker listens there only with WORKER_HTTP.
    assert environment["WORKER_HTTP"] == "true" and environment["PORT"] == "8080"


def test_the_compose_instructions_run_from_one_directory():
    """Every line of compose.yaml's instructions, from the same directory:
    what `cp` copies exists there, `--env-file` is what it made, `-f` names
    the file, and the build context holds the Dockerfile."""
    text = (DEPLOY / "compose.yaml").read_text()
    lines = [line.strip("# ").split("  #")[0].split() for line in text.splitlines()]
    [copy] = [words for words in lines if words[:1] == ["cp"]]
    [up] = [words for words in lines if words[:2] == ["docker", "compose"]]
    cwd = REPO  # "From the repository's root"
    assert (cwd / copy[1]).is_file(), copy
    assert up[up.index("--env-file") + 1] == copy[2]
    compose_file = cwd / up[up.index("-f") + 1]
    assert compose_file == DEPLOY / "compose.yaml"
    build = _documents(compose_file)[0]["x-bridge"]["build"]
    assert (compose_file.parent / build / "Dockerfile").is_file()
    # What the copy makes holds secrets: never committed, never in an image.
    assert f"{copy[2]}\n" in (REPO / ".gitignore").read_text()
    # Each ${NAME} without a default is in the file copied.
    example = {line.split("=")[0] for line in (cwd / copy[1]).read_text().splitlines()}
    for name in set(re.findall(r"\$\{(\w+)\}", text)):
        assert name in example, name


# Autoscaling on queue depth ---------------------------------------------------

AUTOSCALING = DEPLOY / "kubernetes" / "autoscaling"


def test_the_workers_scale_on_the_queue_with_keda_or_on_cpu_as_a_fallback():
    workers = {
        d["metadata"]["name"]
        for d in _documents(DEPLOY / "kubernetes" / "worker.yaml")
        if d["kind"] == "Deployment"
    }
    kinds = {d["kind"] for p in (DEPLOY / "kubernetes").glob("*.yaml") for d in _documents(p)}
    assert "HorizontalPodAutoscaler" not in kinds  # one autoscaler, chosen in autoscaling/
    [scaled] = [d for d in _documents(AUTOSCALING / "keda.yaml") if d["kind"] == "ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] in workers
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    [configmap] = _documents(DEPLOY / "kubernetes" / "configmap.yaml")
    assert trigger["metadata"]["targetQueryValue"] == configmap["data"]["WORKER_CONCURRENCY"]
    [fallback] = _documents(AUTOSCALING / "cpu.yaml")
    assert fallback["spec"]["scaleTargetRef"]["name"] in workers


def test_the_keda_query_counts_tasks_running_or_due_on_a_real_queue(pg_url):
    """The ScaledObject's query, as KEDA's read-only role runs it, against a
    PostgreSQL queue holding a task in every state."""
    import uuid

    import anyio
    import psycopg

    from service.queue.postgres import PostgresQueue
    from tests.support.queue import delivery

    async def fill() -> None:
        queue = PostgresQueue(pg_url, max_backlog=100)
        await queue.open()
        try:
            for n in range(6):
                await queue.enqueue(delivery(f"k{n}"), f"req-{n}")
            running = await queue.claim("w1")  # stays running
            backing_off = await queue.claim("w1")
            done = await queue.claim("w1")
            failed = await queue.claim("w1")
            assert None not in (running, backing_off, done, failed)
            await queue.retry(backing_off, "Iconik unreachable", delay=3600)
            await queue.complete(done)
            await queue.fail(failed, "given up")
            # Two more stay queued and due.
        finally:
            await queue.close()

    anyio.run(fill)
    [scaled] = [d for d in _documents(AUTOSCALING / "keda.yaml") if d["kind"] == "ScaledObject"]
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    role = f"keda_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        # The grant keda.yaml documents, and nothing more.
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'keda-pass'")
        admin.execute(f"GRANT SELECT ON tasks TO {role}")
    keda_url = re.sub(r"//[^@]+@", f"//{role}:keda-pass@", pg_url)
    with psycopg.connect(keda_url) as keda:
        [(count,)] = keda.execute(query).fetchall()
        states = dict(keda.execute("SELECT state, count(*) FROM tasks GROUP BY 1").fetchall())
    assert states == {"queued": 3, "running": 1, "done": 1, "failed": 1}
    assert count == 3  # running, and the two due; not the one backing off for an hour
