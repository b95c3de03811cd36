"""The worker through the whole product (tests/support/stack.py): a task lost
to another worker publishes nothing. The rest:
tests/unit/work/test_worker.py."""


def test_a_worker_that_lost_its_task_to_another_publishes_nothing(tmp_path):
    import anyio

    from tests.support.service import custom_action_body
    from tests.support.stack import stack, with_worker

    with stack(tmp_path) as s:
        answer = s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        assert s.run_once()  # the expand

        async def stalled_past_its_lease(worker, queue):
            task = await queue.claim(worker.owner)
            s.clock.now += s.settings.task_lease_seconds + 1
            taken = await queue.claim("another-worker")
            assert taken.task_id == task.task_id
            await worker.run_task(task)

        anyio.run(with_worker, s.settings, s.clock, stalled_past_its_lease)
        assert [p.name for p in s.root.iterdir() if not p.name.startswith(".")] == []
        [build] = [t for t in s.status(answer["request_id"])["tasks"] if t["kind"] == "build"]
        assert (build["state"], build["attempts"]) == ("running", 2)  # the other worker's
