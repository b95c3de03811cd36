"""The composition root (service/compose.py): who opens a thing closes it,
and each command's differences are parameters of one builder."""

from __future__ import annotations

import pytest

from service.compose import build_app, iconik_client
from service.iconik.client import IconikClient
from service.iconik.ratelimit import LocalBudget, RateLimiter
from service.queue import queue_for
from service.settings import SettingsError
from tests.support.service import make_settings

pytestmark = pytest.mark.anyio


class WatchedBudget(LocalBudget):
    closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_the_client_leaves_open_a_budget_it_was_handed():
    budget = WatchedBudget(10, 3)
    async with IconikClient(
        "http://127.0.0.1:9", "app", "token", limiter=RateLimiter(10, budget=budget)
    ):
        pass
    assert not budget.closed  # its opener closes it (the old client closed it)


async def test_the_shared_budget_is_closed_by_what_opened_it(tmp_path, pg_url):
    settings = make_settings(tmp_path, queue_url=pg_url, iconik_url="http://127.0.0.1:9")
    queue = queue_for(settings)
    await queue.open()  # creates the budget's table and functions
    await queue.close()
    async with iconik_client(settings) as iconik:
        budget = iconik.limiter.budget
        assert type(budget).__name__ == "PostgresBudget"
        assert (await budget.take(1)).tokens == 1  # opens its database connection
        assert budget._connection is not None
    assert budget._connection is None


async def test_a_client_for_a_person_uses_its_own_budget_even_on_postgresql(tmp_path, pg_url):
    settings = make_settings(tmp_path, queue_url=pg_url, iconik_url="http://127.0.0.1:9")
    async with iconik_client(settings, shared_budget=False, max_attempts=2) as iconik:
        assert isinstance(iconik.limiter.budget, LocalBudget)
        assert iconik.max_attempts == 2


def test_a_receiver_with_a_worker_needs_the_iconik_credentials(tmp_path):
    settings = make_settings(tmp_path, iconik_auth_token=None)
    with pytest.raises(SettingsError, match="ICONIK_AUTH_TOKEN"):
        build_app(settings, companion="worker")
    build_app(settings, companion="registry")  # a receiver alone never calls Iconik
    build_app(settings, companion="none")
