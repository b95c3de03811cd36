"""docs/ is the contract: it must name what the code has, and only that.

Every setting, route and metric the service has is named in its page of
docs/, and every one a page names exists; the Grafana dashboard queries
only metrics the service exposes; and the `curl` lines of docs/http.md,
run as a reader would run them, against a real `caption-bridge serve` and
the simulator started by `caption-bridge simulator`, get each bundle built.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from service.intake.app import create_app
from service.metrics import Metrics
from service.settings import Settings
from tests.support.paths import REPOSITORY
from tests.support.polling import until
from tests.support.servers import service_process
from tests.support.service import make_settings

DOCS = REPOSITORY / "docs"


def page(name: str) -> str:
    path = DOCS / name
    assert path.is_file(), f"docs/{name} is missing"
    return path.read_text(encoding="utf-8")


# Settings ------------------------------------------------------------------


def test_every_setting_is_in_settings_md_and_every_one_there_exists():
    in_code = {name.upper() for name in Settings.model_fields}
    # The first column of the tables: | `NAME` | default | what it does |
    in_docs = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", page("settings.md"), re.M))
    assert sorted(in_code - in_docs) == [], "settings missing from docs/settings.md"
    assert sorted(in_docs - in_code) == [], "docs/settings.md names settings that do not exist"


def test_each_documented_default_is_the_code_s():
    rows = dict(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \|", page("settings.md"), re.M))
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        documented = rows[name.upper()].strip()
        if default in (None, [], ""):
            assert documented in ("(unset)", "(empty)"), (name, documented)
            continue
        match = re.match(r"`([^`]*)`", documented)
        assert match, (name, documented)
        if isinstance(default, bool):
            expected = {str(default).lower()}
        elif isinstance(default, float):
            expected = {str(default), f"{default:g}"}
        else:
            expected = {str(default)}
        assert match.group(1) in expected, (name, documented, expected)


# Routes --------------------------------------------------------------------

DOCUMENTED_ROUTE = re.compile(r"^#+ `(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`", re.M)


def test_every_route_is_in_http_md_and_every_one_there_exists(tmp_path):
    app = create_app(make_settings(tmp_path))
    served = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or ()) - {"HEAD"}
    }
    documented = set(DOCUMENTED_ROUTE.findall(page("http.md")))
    assert sorted(served - documented) == [], "routes missing from docs/http.md"
    assert sorted(documented - served) == [], "docs/http.md names routes the app does not serve"


# Metrics -------------------------------------------------------------------

_SAMPLE_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def exposed_metrics() -> set[str]:
    """The names /metrics shows: a counter's with `_total`, the others as registered."""
    names = set()
    for family in Metrics().registry.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def metric_names_in(text: str) -> set[str]:
    names = set()
    for name in re.findall(r"caption_bridge_[a-z0-9_]+", text):
        for suffix in _SAMPLE_SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in exposed_metrics():
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def test_every_metric_is_in_operations_md_and_every_one_there_exists():
    exposed = exposed_metrics()
    text = page("operations.md")
    described = set(re.findall(r"^\| `(caption_bridge_[a-z0-9_]+)` \|", text, re.M))
    assert sorted(exposed - described) == [], "metrics missing from docs/operations.md"
    assert sorted(metric_names_in(text) - exposed) == [], "docs/operations.md names unknown metrics"


def test_the_grafana_dashboard_parses_and_queries_only_real_metrics():
    dashboard = json.loads(page("grafana-dashboard.json"))
    queries = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert queries, "the dashboard has no queries"
    queried = metric_names_in("\n".join(queries))
    exposed = exposed_metrics()
    assert sorted(queried - exposed) == [], "the dashboard queries metrics the service lacks"
    assert sorted(exposed - queried) == [], "metrics the dashboard does not show"


# Nothing points outside the repository --------------------------------------


def test_nothing_points_at_the_old_contract_outside_the_repository():
    places = [REPOSITORY / "README.md"]
    for folder in ("service", "tests", "deploy", "docs"):
        places += [p for p in (REPOSITORY / folder).rglob("*") if p.is_file()]
    offenders = []
    for path in places:
        if path.suffix not in (".py", ".md", ".yaml", ".yml", ".json", ".txt", ".service", ""):
            continue
        if path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            # Test data beside the checkout (the captions corpus, Iconik's
            # published API) is input, not the contract.
            if "DESIGN.md" in line or re.search(
                r"\.\./shared/(?!captions-corpus|iconik-openapi)[\w.-]", line
            ):
                offenders.append(f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_readme_links_every_page_of_docs():
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    for name in sorted(p.name for p in DOCS.iterdir()):
        assert f"](docs/{name})" in readme, f"README.md does not link docs/{name}"


def test_the_readme_links_the_docs_instead_of_copying_their_tables():
    """One place for each table: the README sends readers to docs/ for the
    routes, the settings and the bundle's layout, so the two cannot drift."""
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    rows = {line.strip() for line in readme.splitlines() if line.startswith("| ")}
    for path in sorted(DOCS.glob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("| ") and not line.startswith("|---"):
                header = line.count("|") > 2 and not re.search(r"`|\d", line)
                assert header or line.strip() not in rows, f"README copies docs/{path.name}: {line}"
    route_rows = [r for r in rows if re.match(r"\| `(GET|POST|PUT|PATCH|DELETE) /[^`]*` \|", r)]
    assert route_rows == [], "README repeats docs/http.md's routes"
    setting_rows = [r for r in rows if re.match(r"\| `[A-Z][A-Z0-9_]+` \|", r)]
    assert setting_rows == [], "README repeats docs/settings.md's settings"
    assert "<title> [<asset id>]/\n  project.json" not in readme, "README repeats docs/bundle.md"


# The curl lines, run ---------------------------------------------------------

MARKED_BLOCK = re.compile(r"<!-- docs-test: ([a-z-]+) -->\s*```sh\n(.*?)```", re.S)


def marked_blocks() -> dict[str, str]:
    blocks = dict(MARKED_BLOCK.findall(page("http.md")))
    assert blocks, "docs/http.md marks no block for tests/system/test_docs.py"
    return blocks


def exports(block: str) -> dict[str, str]:
    """`export A=1 B=2` lines of a block, as the reader's shell would take them."""
    values = {}
    for line in block.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("export "):
            for pair in line.removeprefix("export ").split():
                name, _, value = pair.partition("=")
                values[name] = value
    return values


def start_simulator(cwd: Path) -> tuple[subprocess.Popen[str], str]:
    """`caption-bridge simulator` on a free port; its URL from what it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICONIK_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "simulator", "--port", "0", "--large-proxy-mb", "1"],
        cwd=cwd,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # ends when the simulator exits
        match = re.match(r"Iconik simulator on (http://\S+),", line)
        if match:
            return process, match.group(1)
    raise AssertionError(f"the simulator printed no URL (exit {process.wait()})")


@pytest.fixture
def documented_stack(tmp_path) -> Iterator[dict[str, Any]]:
    blocks = marked_blocks()
    server_env = exports(blocks["serve"])
    client_env = exports(blocks["client"])
    simulator, simulator_url = start_simulator(tmp_path)
    try:
        documented_url = server_env["ICONIK_URL"]
        env = {**server_env, "ICONIK_URL": simulator_url, "PORT": "0", "LOG_FORMAT": "json"}
        # The docs' relative STORAGE_URL and QUEUE_URL land in tmp_path.
        with service_process("serve", env=env, cwd=tmp_path) as serve:
            port = serve.wait_for("service.listening")["port"]
            bridge = f"http://127.0.0.1:{port}"
            yield {
                "blocks": blocks,
                "env": {**os.environ, **client_env, "BRIDGE": bridge},
                "bridge": bridge,
                "bearer": client_env["BEARER_TOKEN"],
                "storage": tmp_path / server_env["STORAGE_URL"],
                "documented_url": documented_url,
            }
    finally:
        simulator.terminate()
        simulator.wait(30)


def run_block(stack: dict[str, Any], name: str, **extra: str) -> Any:
    """Run a marked block with bash as a reader would; its JSON answer."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", stack["blocks"][name]],
        env={**stack["env"], **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (name, done.stdout, done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def request_status(stack: dict[str, Any], request_id: str) -> dict[str, Any]:
    http = urllib.request.Request(
        f"{stack['bridge']}/requests/{request_id}",
        headers={"Authorization": f"Bearer {stack['bearer']}"},
    )
    with urllib.request.urlopen(http, timeout=10) as answer:
        return json.load(answer)


def finished(stack: dict[str, Any], request_id: str, bound: float = 20) -> dict[str, Any]:
    """Poll the request (bounded) until no task waits or runs."""
    status: dict[str, Any] = {"tasks": []}

    def ended() -> dict[str, Any] | None:
        status.clear()
        status.update(request_status(stack, request_id))
        return status if status["status"] not in ("queued", "running") else None

    return until(
        ended,
        within=bound,
        why=lambda: [(t["kind"], t["state"], t["error"]) for t in status["tasks"]],
    )


def bundle_of(stack: dict[str, Any], asset_id: str) -> dict[str, Any]:
    [folder] = stack["storage"].glob(f"*[[]{asset_id}[]]")
    return json.loads((folder / "project.json").read_text())


def test_the_documented_curl_lines_build_bundles(documented_stack):
    stack = documented_stack
    blocks = stack["blocks"]
    assert stack["documented_url"] == "http://127.0.0.1:8090"  # what `simulator --port 8090` prints
    assert {"health", "click-signed", "click-bearer", "webhook-signed", "webhook-bearer"} <= set(
        blocks
    )

    assert run_block(stack, "health") == {"status": "ok"}

    clicked = {}
    for name in ("click-signed", "click-bearer"):
        answer = run_block(stack, name)
        assert answer["status"] == "queued", (name, answer)
        status = finished(stack, answer["request_id"])
        assert status["status"] == "done", (name, status)
        [asset] = re.findall(r'"asset_ids":\s*\["([0-9a-f-]{36})"\]', blocks[name])
        clicked[name] = asset
        assert bundle_of(stack, asset)["asset"]["id"] == asset

    request = run_block(stack, "status", REQUEST_ID=answer["request_id"])
    assert request["request_id"] == answer["request_id"]

    for name in ("webhook-signed", "webhook-bearer"):
        [asset] = re.findall(r'"object_id":\s*"([0-9a-f-]{36})"', blocks[name])
        assert asset in clicked.values(), f"{name} is about an asset with no bundle: ignored"
        answer = run_block(stack, name)
        assert answer.get("request_id"), (name, answer)
        status = finished(stack, answer["request_id"])
        assert status["status"] == "done", (name, status)
        assert [t["kind"] for t in status["tasks"]] == ["refresh"], status
        assert bundle_of(stack, asset)["asset"]["id"] == asset

    for name in ("ready", "metrics"):
        if name in blocks:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", blocks[name]],
                env=stack["env"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, (name, done.stderr)


# Log events ------------------------------------------------------------------

LOG_CALL = re.compile(
    r"\b\w*log\w*\.(?:debug|info|warning|error|exception|critical)\(\s*\"([a-z_]+(?:\.[a-z_]+)*)\""
)


def test_every_log_event_is_in_operations_md_and_every_one_there_exists():
    logged = set()
    for path in (REPOSITORY / "service").rglob("*.py"):
        logged |= set(LOG_CALL.findall(path.read_text(encoding="utf-8")))
    text = page("operations.md")
    table = text[text.index("## Log events") :]
    described = set()
    for first_column in re.findall(r"^\| ([^|]+) \|", table, re.M):
        described |= set(re.findall(r"`([a-z_.]+)`", first_column))
    assert sorted(logged - described) == [], "log events missing from docs/operations.md"
    assert sorted(described - logged) == [], "docs/operations.md names log events never logged"


def test_every_module_is_placed_in_architecture_md():
    text = page("architecture.md")
    service = REPOSITORY / "service"
    modules = sorted(p.stem for p in service.glob("*.py") if p.stem != "__init__")
    packages = sorted(p.name for p in service.iterdir() if (p / "__init__.py").exists())
    missing = [m for m in modules if f"`{m}`" not in text]
    missing += [f"{p}/" for p in packages if f"`{p}/`" not in text]
    table = text[text.index("## Packages and modules") :]
    for package in packages:  # each module of a package, in its package's row
        row = next((r for r in table.splitlines() if r.startswith(f"| `{package}/`")), "")
        named = re.findall(r"`(\w+)(\*?)`", row)  # `sqlite*` places every sqlite_ module
        for stem in sorted(p.stem for p in (service / package).glob("*.py")):
            placed = any(stem == n or (star and stem.startswith(n)) for n, star in named)
            if stem != "__init__" and not placed:
                missing.append(f"{package}/{stem}")
    assert missing == [], "modules docs/architecture.md does not place"


def test_every_simulator_module_is_placed_in_architecture_md():
    text = page("architecture.md")
    section = text[text.index("## The Iconik simulator") :]
    modules = sorted(
        p.stem for p in (REPOSITORY / "simulator").glob("*.py") if p.stem != "__init__"
    )
    placed = set(re.findall(r"`([a-z_]+)`", section))
    assert [m for m in modules if m not in placed] == [], "simulator modules not placed"
