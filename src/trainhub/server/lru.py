"""A thread-safe map that keeps its most recently used entries within a count and a cost."""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """Entries by key; the least recently used go first beyond `max_entries` or `max_cost`.

    `cost` says what an entry weighs (1 each when not given); an entry heavier than `max_cost`
    on its own is not kept.
    """

    def __init__(
        self,
        max_entries: int,
        max_cost: int | None = None,
        cost: Callable[[V], int] | None = None,
    ) -> None:
        self._max_entries, self._max_cost = max_entries, max_cost
        self._cost = cost or (lambda _: 1)
        self._held = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V) -> None:
        weight = self._cost(value)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._held -= old[1]
            if self._max_cost is not None and weight > self._max_cost:
                return
            self._entries[key] = (value, weight)
            self._held += weight
            while len(self._entries) > self._max_entries or (
                self._max_cost is not None and self._held > self._max_cost
            ):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._held -= dropped
