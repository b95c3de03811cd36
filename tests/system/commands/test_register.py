"""`register` / `unregister` against the simulator over real HTTP."""

import socket

import pytest

from service.__main__ import main
from simulator import Simulator
from tests.support.cli import cli, logging_restored, one_line_error
from tests.support.extract_openapi import USED
from tests.support.iconik_api import operation_for
from tests.support.servers import running
from tests.support.service import BEARER, ICONIK_TOKEN
from tests.support.stack import APP_ID

PUBLIC = "https://captions.example.test"


@pytest.fixture
def sim(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    simulator = Simulator(APP_ID, ICONIK_TOKEN)
    with logging_restored(), running(simulator.app()) as url:
        for name, value in {
            "ICONIK_URL": url,
            "ICONIK_APP_ID": APP_ID,
            "ICONIK_AUTH_TOKEN": ICONIK_TOKEN,
            "BEARER_TOKENS": BEARER,
            "LOG_FORMAT": "console",
        }.items():
            monkeypatch.setenv(name, value)
        yield simulator


def contexts(sim):
    return sorted(a["context"] for a in sim.custom_actions.values())


def test_register_twice_leaves_one_of_each(sim, capsys):
    unrelated = {"id": "keep-me", "context": "ASSET", "title": "Other tool", "url": "https://x"}
    sim.custom_actions["keep-me"] = unrelated
    assert main(["register", "--public-url", PUBLIC]) == 0
    assert main(["register", "--public-url", PUBLIC + "/"]) == 0
    ours = [a for a in sim.custom_actions.values() if a["id"] != "keep-me"]
    assert sorted(a["context"] for a in ours) == ["ASSET", "BULK", "COLLECTION"]
    for action in ours:
        assert action["url"] == PUBLIC + "/iconik/custom-action"
        assert action["type"] == "POST"
        assert action["headers"] == {"Authorization": f"Bearer {BEARER}"}
    hooks = sorted((h["operation"], h["realm"]) for h in sim.webhooks.values())
    assert hooks == [("create", None), ("delete", "entity"), ("update", None)]
    assert all(h["url"] == PUBLIC + "/iconik/webhook" for h in sim.webhooks.values())
    out = capsys.readouterr().out
    # Six actions and webhooks, and the captioning-state field and its view.
    assert out.count("create ") == 8 and out.count("keep ") == 8
    assert BEARER not in out


@pytest.mark.slow
def test_register_updates_in_place_when_the_token_changes(sim, monkeypatch):
    main(["register", "--public-url", PUBLIC, "--saved-search", "--metadata-view", "view-1"])
    monkeypatch.setenv("BEARER_TOKENS", "a-rotated-token,old")
    main(["register", "--public-url", PUBLIC, "--saved-search", "--metadata-view", "view-1"])
    assert contexts(sim) == ["ASSET", "BULK", "COLLECTION", "SAVED_SEARCH"]
    assert {a["metadata_view"] for a in sim.custom_actions.values()} == {"view-1"}
    assert {a["headers"]["Authorization"] for a in sim.custom_actions.values()} == {
        "Bearer a-rotated-token"
    }
    assert len(sim.webhooks) == 3


def test_unregister_removes_exactly_what_register_created(sim):
    sim.custom_actions["keep-me"] = {
        "id": "keep-me",
        "context": "ASSET",
        "title": "Other",
        "url": PUBLIC + "/iconik/custom-action",
    }
    sim.webhooks["theirs"] = {
        "id": "theirs",
        "name": "someone else's",
        "event_type": "assets",
        "url": "https://elsewhere",
        "status": "ENABLED",
    }
    main(["register", "--public-url", PUBLIC, "--saved-search"])
    assert main(["unregister", "--public-url", PUBLIC]) == 0
    assert list(sim.custom_actions) == ["keep-me"]
    assert list(sim.webhooks) == ["theirs"]


@pytest.mark.slow
def test_every_request_register_makes_exists_in_iconiks_api(sim):
    main(["register", "--public-url", PUBLIC, "--saved-search"])
    main(["register", "--public-url", PUBLIC, "--saved-search"])
    main(["unregister", "--public-url", PUBLIC])
    used = {f"{m} {p}" for m, p in USED}
    made = {(m, p) for m, p in sim.requests}
    assert {m for m, _ in made} == {"GET", "POST", "DELETE"}
    assert sorted(f"{m} {p}" for m, p in made if operation_for(m, p) not in used) == []


def test_dry_run_calls_nothing(sim, capsys):
    assert main(["register", "--public-url", PUBLIC, "--dry-run"]) == 0
    assert sim.requests == [] and sim.custom_actions == {}
    out = capsys.readouterr().out
    assert "custom action ASSET" in out and BEARER not in out
    assert "metadata field 'caption_status' in view" in out


@pytest.mark.slow
def test_register_makes_the_status_field_and_view_once_and_prints_the_view_id(sim, capsys):
    from service.commands.register_status import STATUS_VIEW_NAME

    assert main(["register", "--public-url", PUBLIC]) == 0
    assert main(["register", "--public-url", PUBLIC]) == 0
    assert list(sim.fields) == ["caption_status"]
    assert sim.fields["caption_status"]["field_type"] == "string"
    [view] = [v for v in sim.views.values() if v["name"] == STATUS_VIEW_NAME]
    assert [f["name"] for f in view["view_fields"]] == ["caption_status"]
    out = capsys.readouterr().out
    assert out.count(f"set CAPTION_STATUS_VIEW_ID={view['id']} ") == 2
    assert "create  metadata view" in out and "keep    metadata view" in out


def test_register_needs_a_bearer_token(sim, monkeypatch, capsys):
    monkeypatch.delenv("BEARER_TOKENS")
    monkeypatch.setenv("WEBHOOK_SECRETS", "only-a-secret")
    assert main(["register", "--public-url", PUBLIC]) == 2
    assert "BEARER_TOKENS must be set" in capsys.readouterr().err


MOVED = "https://captions-new.example.test"


def ours(sim):
    actions = sorted((a["context"], a["url"]) for a in sim.custom_actions.values())
    hooks = sorted((h["operation"], h["realm"] or "", h["url"]) for h in sim.webhooks.values())
    return actions, hooks


@pytest.mark.slow
def test_register_with_replace_url_moves_an_earlier_registration(sim, capsys):
    assert main(["register", "--public-url", PUBLIC, "--saved-search"]) == 0
    ids_before = set(sim.custom_actions) | set(sim.webhooks)
    capsys.readouterr()
    assert main(["register", "--public-url", MOVED, "--replace-url"]) == 0
    actions, hooks = ours(sim)
    # One set, at the new URL: moved in place (same ids), the extra context removed.
    assert actions == [
        (context, MOVED + "/iconik/custom-action") for context in ("ASSET", "BULK", "COLLECTION")
    ]
    assert [url for *_, url in hooks] == [MOVED + "/iconik/webhook"] * 3
    assert set(sim.custom_actions) | set(sim.webhooks) < ids_before
    out = capsys.readouterr().out
    assert out.count("update ") == 6 and out.count("delete ") == 1 and "create " not in out
    # And again: nothing left to move.
    assert main(["register", "--public-url", MOVED, "--replace-url"]) == 0
    assert ours(sim) == (actions, hooks)
    assert capsys.readouterr().out.count("keep ") == 8  # and the status field and view


def test_register_elsewhere_without_replace_url_warns_of_the_earlier_one(sim, capsys):
    assert main(["register", "--public-url", PUBLIC]) == 0
    capsys.readouterr()
    assert main(["register", "--public-url", MOVED]) == 0
    err = capsys.readouterr().err
    assert f"an earlier registration points 6 action(s)/webhook(s) at {PUBLIC}" in err
    assert "--replace-url" in err
    assert len(sim.custom_actions) == 6  # both stay, as asked


def test_register_refuses_http_unless_allowed(sim, capsys):
    assert main(["register", "--public-url", "http://captions.example.test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use https://, or --allow-http" in err[0]
    assert sim.requests == []
    allowed = ["register", "--public-url", "http://10.0.0.5:8080", "--allow-http"]
    assert main(allowed) == 0
    assert {a["url"] for a in sim.custom_actions.values()} == {
        "http://10.0.0.5:8080/iconik/custom-action"
    }


def test_register_prints_one_line_per_problem(sim, monkeypatch, capsys):
    monkeypatch.delenv("BEARER_TOKENS")
    monkeypatch.delenv("ICONIK_AUTH_TOKEN")
    monkeypatch.setenv("WEBHOOK_SECRETS", "only-a-secret")
    assert main(["register", "--public-url", "http://x.example.test/?a=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(": ", 2)[1].split(" ")[0] for line in err] == [
        "--public-url",
        "--public-url",
        "BEARER_TOKENS",
        "ICONIK_AUTH_TOKEN",
    ]
    assert sim.requests == []


def cli_env(sim_url: str, **extra: str) -> dict[str, str]:
    return {
        "ICONIK_URL": sim_url,
        "ICONIK_APP_ID": APP_ID,
        "ICONIK_AUTH_TOKEN": ICONIK_TOKEN,
        "BEARER_TOKENS": BEARER,
        **extra,
    }


@pytest.fixture
def sim_url(sim):
    import os

    return os.environ["ICONIK_URL"]


@pytest.mark.slow
def test_register_with_refused_credentials_names_the_role_in_one_line(sim, sim_url, tmp_path):
    result = cli(
        "register", "--public-url", PUBLIC, cwd=tmp_path,
        env=cli_env(sim_url, ICONIK_AUTH_TOKEN="a-revoked-token"),
    )  # fmt: skip
    line = one_line_error(result)
    assert "Iconik refused GET /API/assets/v1/custom_actions/ASSET/" in line
    assert "needs can_read_custom_actions" in line and "a-revoked-token" not in line


def test_register_names_the_role_of_the_call_that_was_refused(sim, capsys):
    sim.fail_next("/API/notifications/v1/webhooks/", None, 403)  # the GET passes, the POST not
    assert main(["register", "--public-url", PUBLIC]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "Iconik refused POST /API/notifications/v1/webhooks/" in line
    assert line.endswith("needs can_write_webhooks")


@pytest.mark.slow
def test_register_with_iconik_unreachable_names_the_host(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = cli_env(f"http://127.0.0.1:{port}", LOG_FORMAT="console")
    line = one_line_error(cli("register", "--public-url", PUBLIC, cwd=tmp_path, env=env))
    assert line.startswith(f"caption-bridge register: cannot reach Iconik at 127.0.0.1:{port}")
