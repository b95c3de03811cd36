"""A dict that keeps its most recently used entries, at most `size` of them.

The deliver scan remembers, per caption file, what it last saw and checked,
so that nothing is read twice while it stays as it is. Remembering every
file ever delivered grows with the library (1.4 KB a file); past `size`
files the least recently used is forgotten, and costs one more read if it
is looked at again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items))

    def keep_only(self, wanted: set[K]) -> None:
        """Forget every key not in `wanted` (after a look at everything)."""
        for key in [k for k in self._items if k not in wanted]:
            del self._items[key]

    def forget(self, key: K) -> None:
        self._items.pop(key, None)
