from service.work.gather import pick_original, pick_proxy

ASSET_A, ASSET_B = "0a1b2c3d-0000-4000-8000-00000000000a", "0a1b2c3d-0000-4000-8000-00000000000b"


def proxy(name, height, fmt="MP4", codec="h264", status="CLOSED"):
    return {
        "id": name,
        "format": fmt,
        "codec": codec,
        "status": status,
        "resolution": {"width": height * 16 // 9, "height": height},
    }


def test_prefers_mp4_h264_then_largest_within_the_cap():
    proxies = [
        proxy("webm1080", 1080, "WEBM", "vp9"),
        proxy("mp4-540", 540),
        proxy("mp4-720", 720),
        proxy("mp4-2160", 2160),
    ]
    assert pick_proxy(proxies, 1080)["id"] == "mp4-720"


def test_takes_the_smallest_above_the_cap_when_nothing_fits():
    assert pick_proxy([proxy("2160", 2160), proxy("1440", 1440)], 1080)["id"] == "1440"


def test_unfinished_proxies_are_not_usable():
    assert (
        pick_proxy([proxy("p", 720, status="OPEN"), proxy("q", 720, status="FAILED")], 1080) is None
    )


def test_original_excludes_subtitle_files_and_unfinished_files():
    files = [
        {"id": "srt", "status": "CLOSED", "format_id": "subs", "size": 10_000_000},
        {"id": "open", "status": "OPEN", "format_id": "orig", "size": 9_000_000},
        {"id": "mov", "status": "CLOSED", "format_id": "orig", "size": 5_000_000},
    ]
    assert pick_original(files, {"subs"})["id"] == "mov"
    assert pick_original(files[:2], {"subs"}) is None


def test_a_queue_outage_while_settling_does_not_stop_the_worker(tmp_path):
    import anyio

    from service.queue import QueueUnavailable
    from service.work.iconik_jobs import JobReporter
    from service.work.runner import Worker
    from tests.support.service import make_settings

    class FlakyQueue:
        """Hands out two tasks; recording the first outcome fails."""

        def __init__(self):
            self.claims = 0
            self.completed = []
            self.second_done = anyio.Event()

        async def claim(self, owner):
            self.claims += 1
            if self.claims > 2:
                await anyio.sleep_forever()
            from service.queue import Task

            return Task(
                task_id=f"t{self.claims}",
                request_id="r",
                kind="expand",
                asset_id=None,
                attempts=1,
                owner=owner,
                request_kind="webhook",
                payload={"asset_ids": [ASSET_A, ASSET_B], "context": "BULK"},
            )

        async def complete(self, task, children=None, note=None, events=None):
            if task.task_id == "t1":
                raise QueueUnavailable("database is locked")
            self.completed.append(task.task_id)
            self.second_done.set()

        async def registry_filled(self):
            return True

        async def extend_lease(self, task):
            pass

    # (retention off: this queue keeps no history to prune)
    settings = make_settings(
        tmp_path, worker_concurrency=1, click_rights="application", retention_days=0
    )
    queue = FlakyQueue()
    jobs = JobReporter(iconik=None, queue=queue, enabled=False)
    worker = Worker(settings, queue, iconik=None, storage=None, poll_interval=0, jobs=jobs)

    async def main():
        with anyio.move_on_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(worker.run)
                await queue.second_done.wait()
                group.cancel_scope.cancel()

    anyio.run(main)
    assert queue.completed == ["t2"]


def test_the_worker_prunes_the_history_past_retention_days_and_keeps_the_rest(tmp_path):
    import anyio

    from service.queue.sqlite import SQLiteQueue
    from service.work.iconik_jobs import JobReporter
    from service.work.runner import Worker
    from tests.support.clock import FakeClock
    from tests.support.polling import until_async
    from tests.support.queue_fill import History, fill_sqlite
    from tests.support.service import make_settings

    clock = FakeClock()
    day = 86_400
    settings = make_settings(tmp_path, worker_concurrency=1, retention_days=30)
    queue = SQLiteQueue(settings.sqlite_path, clock=clock)

    async def main():
        await queue.open()
        await queue.fill_registry([])
        await queue.close()
        # 3000 finished requests, one an hour: the older 2280 (95 days to 30
        # days and an hour ago) are past the window, the last 720 are not.
        fill_sqlite(str(settings.sqlite_path), History(3000, clock.now - 125 * day, 3600.0))
        await queue.open()
        jobs = JobReporter(iconik=None, queue=queue, enabled=False)
        worker = Worker(settings, queue, iconik=None, storage=None, poll_interval=0, jobs=jobs)
        try:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:
                    group.start_soon(worker.run)

                    async def pruned():
                        return await queue.request_status("hr2279") is None

                    await until_async(pruned, within=30, every=0.01)
                    group.cancel_scope.cancel()
            kept = [await queue.request_status(f"hr{n}") for n in (2278, 2280, 2999)]
            assert kept[0] is None and kept[1] is not None and kept[2] is not None
        finally:
            await queue.close()

    anyio.run(main)
