"""The queue's interface in parts: `Queue` is exactly their union, each
method in one part, and both backends provide every one of them."""

from __future__ import annotations

import inspect

import pytest

from service.queue import Queue
from service.queue.postgres import PostgresQueue
from service.queue.protocols import PARTS
from service.queue.sqlite import SQLiteQueue


def members(protocol: type) -> set[str]:
    return {
        name
        for name, value in vars(protocol).items()
        if inspect.iscoroutinefunction(value) or inspect.isfunction(value)
    } - {"__init__", "_proto_hook", "__subclasshook__"}


def test_each_method_is_in_one_part_and_queue_is_their_union():
    seen: dict[str, str] = {}
    for part in PARTS:
        for name in members(part):
            assert name not in seen, f"{name} in {seen.get(name)} and {part.__name__}"
            seen[name] = part.__name__
    union = {name for base in Queue.__mro__ if base in PARTS for name in members(base)}
    assert set(seen) == union
    assert members(Queue) == set(), "Queue declares nothing of its own: only its parts"
    assert len(seen) >= 35


@pytest.mark.parametrize("backend", [SQLiteQueue, PostgresQueue])
def test_each_backend_provides_every_part(backend: type):
    for part in PARTS:
        for name in members(part):
            method = getattr(backend, name, None)
            assert inspect.iscoroutinefunction(method), f"{backend.__name__}.{name}"
            wanted = list(inspect.signature(getattr(part, name)).parameters)
            assert list(inspect.signature(method).parameters) == wanted, name
