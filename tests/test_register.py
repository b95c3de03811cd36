"""`register` / `unregister` against the simulator over real HTTP."""

import pytest

from service.__main__ import main
from service.simulator import Simulator
from tests.conftest import BEARER, ICONIK_TOKEN
from tests.extract_openapi import USED
from tests.iconik_api import operation_for
from tests.servers import running
from tests.stack import APP_ID

PUBLIC = "https://captions.example.test"


@pytest.fixture
def sim(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    simulator = Simulator(APP_ID, ICONIK_TOKEN)
    with running(simulator.app()) as url:
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
    assert out.count("create ") == 6 and out.count("keep ") == 6
    assert BEARER not in out


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


def test_register_needs_a_bearer_token(sim, monkeypatch, capsys):
    monkeypatch.delenv("BEARER_TOKENS")
    monkeypatch.setenv("WEBHOOK_SECRETS", "only-a-secret")
    assert main(["register", "--public-url", PUBLIC]) == 2
    assert "BEARER_TOKENS must be set" in capsys.readouterr().err
