"""Fixed-window counters shared by the processes of `trainhub server --workers N`, without Redis.

The table lives in a file of the data directory, mapped into every process's memory; a hit takes
the file's lock (flock), finds its slot by the hash of (identity, limit) with linear probing, and
counts. Nothing is written to disk on purpose (the file only names the memory the processes
share), so a hit costs microseconds. A full table reuses the slot whose window ends first, so
the table never grows; with MAX_SLOTS slots that only happens with tens of thousands of callers
within one window. Several replicas on several machines share counters through Redis instead.
"""

import fcntl
import hashlib
import mmap
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

from limits import RateLimitItem

from trainhub.server.filemodes import create_private_file

MAX_SLOTS = 65_536
PROBES = 32
_SLOT = struct.Struct("<Qdq")  # key hash (0: free), window end (unix s), count


class SharedWindows:
    """Fixed windows in a memory-mapped file that every worker process opens."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        size = MAX_SLOTS * _SLOT.size
        if not path.exists():
            create_private_file(path)
        self._fd = os.open(path, os.O_RDWR)
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)

    def hit(self, identity: str, index: int, item: RateLimitItem) -> tuple[bool, int, float]:
        """Count one hit; return (allowed, count in the window after it, window end)."""
        key = int.from_bytes(
            hashlib.blake2b(f"{index}|{identity}".encode(), digest_size=8).digest()
        )
        key = key or 1  # 0 marks a free slot
        now = self._clock()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            offset = self._slot(key, now)
            found, ends_at, count = _SLOT.unpack_from(self._map, offset)
            if found != key or now >= ends_at:
                ends_at, count = now + item.get_expiry(), 0
            allowed = count < item.amount
            if allowed:
                count += 1
            _SLOT.pack_into(self._map, offset, key, ends_at, count)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return allowed, count, ends_at

    def _slot(self, key: int, now: float) -> int:
        """Return the offset of `key`'s slot: its own, a free or expired one, or the oldest."""
        start = key % MAX_SLOTS
        oldest, oldest_end = start, float("inf")
        for probe in range(PROBES):
            offset = ((start + probe) % MAX_SLOTS) * _SLOT.size
            found, ends_at, _ = _SLOT.unpack_from(self._map, offset)
            if found == key or found == 0 or ends_at <= now:
                return offset
            if ends_at < oldest_end:
                oldest, oldest_end = offset, ends_at
        return oldest
