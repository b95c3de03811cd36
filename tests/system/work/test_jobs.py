"""Each request's progress as an Iconik job, best-effort."""

import pytest

from service.work.job_state import (
    Outcome,
    job_assets,
    job_outcome,
    job_title,
    may_show_title,
    new_job,
    state_fields,
)
from tests.support.service import custom_action_body
from tests.support.stack import stack


def task(asset, state, error=None):
    return {"asset_id": asset, "state": state, "last_error": error}


def test_outcome_follows_the_asset_tasks():
    expand = {"asset_id": None, "state": "done", "last_error": None}
    assert job_outcome([expand]) is None
    assert job_outcome([expand, task("a", "done"), task("b", "queued")])[:3] == ("STARTED", 1, 2)
    assert job_outcome([task("a", "done"), task("b", "done")])[:3] == ("FINISHED", 2, 2)
    status, processed, total, message = job_outcome(
        [task("a", "done"), task("b", "failed", "no proxy")]
    )
    assert (status, processed, total) == ("FINISHED_WITH_WARNING", 2, 2)
    assert "asset b: no proxy" in message
    assert job_outcome([task("a", "failed", "x")])[0] == "FAILED"


def test_a_request_that_could_not_expand_is_failed_with_the_reason():
    expand = {"asset_id": None, "state": "failed", "last_error": "collection c not found"}
    assert job_outcome([expand]) == ("FAILED", 0, 0, "collection c not found")
    assert job_outcome([{**expand, "state": "queued"}]) is None  # still retrying


def test_job_titles():
    assert job_title({"context": "BULK"}, ["a"], "Clip") == "Send to Captioning: Clip"
    assert job_title({"context": "BULK"}, ["a"]) == "Send to Captioning: a"
    assert job_title({"context": "BULK"}, ["a", "b"]) == "Send to Captioning: selection of 2 assets"
    assert job_title({"context": "COLLECTION"}, []) == "Send to Captioning: collection"


def test_a_job_s_fields_say_when_it_ended_and_why_it_failed_only_once_it_has():
    now = "2026-12-06T12:00:00+00:00"
    started = state_fields(Outcome("STARTED", 1, 3, "1 of 3 bundles processed"), now)
    assert started == {
        "status": "STARTED",
        "message": "1 of 3 bundles processed",
        "progress_processed": 1,
        "progress_total": 3,
    }
    failed = state_fields(Outcome("FAILED", 0, 0, "collection c not found"), now)
    assert failed == {
        "status": "FAILED",
        "message": "collection c not found",
        "completed_at": now,
        "error_message": "collection c not found",
    }


def test_a_new_job_names_its_assets_up_to_a_hundred_and_its_only_asset_as_its_object():
    state = {"status": "STARTED", "message": "m"}
    one = new_job("t", "r", ["a"], started_at="s", state=state)
    assert one == {
        "title": "t",
        "type": "CUSTOM",
        "custom_type": "caption-bridge",
        "metadata": {"caption_bridge_request_id": "r"},
        "started_at": "s",
        "status": "STARTED",
        "message": "m",
        "related_objects": [{"object_type": "assets", "object_id": "a"}],
        "object_type": "assets",
        "object_id": "a",
    }
    many = new_job("t", "r", [str(i) for i in range(150)], started_at="s", state=state)
    assert len(many["related_objects"]) == 100 and "object_id" not in many
    assert "related_objects" not in new_job("t", "r", [], started_at="s", state=state)


def test_a_job_s_assets_and_whether_it_may_show_a_title():
    status = {"payload": {"asset_ids": ["p"]}, "tasks": [{"asset_id": None, "state": "done"}]}
    assert job_assets(status, None) == ["p"]
    assert job_assets(status, ["e"]) == ["e"]
    status["tasks"].append({"asset_id": "a", "state": "failed"})
    assert job_assets(status, ["e"]) == ["a"]
    assert not may_show_title(status, ["a"], frozenset())  # failed: maybe not the user's to read
    status["tasks"][-1]["state"] = "done"
    assert may_show_title(status, ["a"], frozenset())
    assert not may_show_title(status, ["a"], frozenset({"a"}))


def test_three_assets_one_failing_ends_finished_with_warning(tmp_path):
    with stack(tmp_path, allow_original_media=False, proxy_wait_seconds=20) as s:
        assets = [s.seeded.normal, s.seeded.original_only, s.seeded.traversal_title]
        answer = s.send(custom_action_body(context="BULK", asset_ids=assets))
        s.drain()
        [job] = s.sim.jobs.values()
        assert (
            job["type"] == "CUSTOM" and job["title"] == "Send to Captioning: selection of 3 assets"
        )
        assert {r["object_id"] for r in job["related_objects"]} == set(assets)
        assert job["status"] == "FINISHED_WITH_WARNING"
        assert (job["progress_processed"], job["progress_total"]) == (3, 3)
        assert s.seeded.original_only in job["message"]
        assert "ALLOW_ORIGINAL_MEDIA" in job["message"]
        assert job["history"][0] == "STARTED" and job["history"][-1] == "FINISHED_WITH_WARNING"
        assert s.status(answer["request_id"])["iconik_job_id"] == job["id"]


def test_single_asset_job_is_titled_after_the_asset(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        [job] = s.sim.jobs.values()
        assert job["title"] == "Send to Captioning: Harbour Lights: Episode 1"
        assert job["object_id"] == s.seeded.normal and job["status"] == "FINISHED"


def test_a_failing_jobs_api_does_not_stop_the_bundles(tmp_path):
    with stack(tmp_path) as s:
        s.sim.fail_next("/API/jobs/", *[500] * 50)
        answer = s.send(
            custom_action_body(context="BULK", asset_ids=[s.seeded.normal, s.seeded.large])
        )
        s.drain()
        assert s.status(answer["request_id"])["status"] == "done"
        assert s.manifest(s.seeded.normal)["status"] == "ready"
        assert s.sim.jobs == {}


def test_jobs_can_be_turned_off(tmp_path):
    with stack(tmp_path, iconik_jobs=False) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        assert s.sim.jobs == {}
        assert not any("/API/jobs/" in path for _, path in s.sim.requests)


@pytest.mark.slow
def test_request_that_cannot_expand_gets_a_failed_job(tmp_path):
    with stack(tmp_path, max_assets_per_request=2) as s:
        answer = s.send(custom_action_body(context="BULK", asset_ids=s.seeded.all))
        s.drain()
        status = s.status(answer["request_id"])
        assert status["status"] == "failed"
        [expand] = status["tasks"]
        assert "covers 5 assets, more than MAX_ASSETS_PER_REQUEST (2)" in expand["error"]
        [job] = s.sim.jobs.values()
        assert job["status"] == "FAILED" and "MAX_ASSETS_PER_REQUEST" in job["message"]


def test_an_expand_that_runs_twice_makes_one_job(tmp_path):
    import anyio

    from service.compose import iconik_client
    from service.queue.sqlite import SQLiteQueue
    from service.work.iconik_jobs import JobReporter

    with stack(tmp_path) as s:
        answer = s.send(custom_action_body(asset_ids=[s.seeded.normal]))

        async def start_twice():
            queue = SQLiteQueue(s.settings.sqlite_path)
            await queue.open()
            async with iconik_client(s.settings) as iconik:
                jobs = JobReporter(iconik, queue)
                await jobs.start(answer["request_id"], [s.seeded.normal])
                await jobs.start(answer["request_id"], [s.seeded.normal])
            await queue.close()

        anyio.run(start_twice)
        assert len(s.sim.jobs) == 1


def test_a_job_iconik_could_not_create_at_expand_is_created_later(tmp_path):
    with stack(tmp_path) as s:
        s.sim.fail_next("/API/jobs/", *[500] * 5)  # every attempt of the expand's create
        assets = [s.seeded.normal, s.seeded.traversal_title]
        answer = s.send(custom_action_body(context="BULK", asset_ids=assets))
        assert s.run_once()  # the expand
        assert s.sim.jobs == {} and s.sim.faults["/API/jobs/"] == []
        s.drain()
        [job] = s.sim.jobs.values()
        assert job["title"] == "Send to Captioning: selection of 2 assets"
        assert {r["object_id"] for r in job["related_objects"]} == set(assets)
        assert job["processed_history"][0] == 1  # created with the progress of that moment
        assert job["status"] == "FINISHED"
        assert (job["progress_processed"], job["progress_total"]) == (2, 2)
        assert s.status(answer["request_id"])["iconik_job_id"] == job["id"]


@pytest.mark.slow
def test_two_hundred_assets_end_finished_though_progress_patches_are_retried(tmp_path):
    with stack(tmp_path, worker_concurrency=8, metadata_view_ids="") as s:
        assets = s.sim.add_tiny_assets(200)
        # Every third call to the jobs API is first answered 429, all through
        # the run: the create and many progress PATCHes go out twice.
        s.sim.fail_next("/API/jobs/", *[429, None, None] * 200)
        answer = s.send(custom_action_body(context="BULK", asset_ids=assets))
        s.run_until_drained()
        assert s.status(answer["request_id"])["status"] == "done"
        [job] = s.sim.jobs.values()
        assert job["status"] == "FINISHED"
        assert (job["progress_processed"], job["progress_total"]) == (200, 200)
        assert set(job["history"][:-1]) == {"STARTED"} and job["history"][-1] == "FINISHED"
        processed = job["processed_history"]
        assert processed == sorted(processed), "progress went backwards"
        patches = [path for method, path in s.sim.requests if method == "PATCH"]
        assert len(patches) > len(processed) - 1, "no PATCH was retried"
