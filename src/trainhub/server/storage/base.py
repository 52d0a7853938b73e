"""The Storage protocol: where blobs (weights, checkpoints, datasets, images) live.

Keys are built by the server from server-made ids and content hashes, never from client text
(docs/security.md §2.1). Writes stream through a BlobWriter that hashes on the way and publishes
atomically: a reader sees no file or the complete file, never a partial one.
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

_KEY_RE = re.compile(r"^[a-z]+(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){1,4}$")


class StorageError(Exception):
    """The storage backend failed (disk full, permissions, unreachable bucket)."""


class BlobNotFoundError(StorageError):
    """The blob asked for is not in storage."""


def check_key(key: str) -> str:
    """Return `key` if it is a well-formed server-made storage key, else raise ValueError."""
    if not _KEY_RE.match(key) or ".." in key:
        raise ValueError(f"malformed storage key {key!r}")
    return key


class BlobWriter(Protocol):
    """A blob being written: feed chunks, then publish it under a key (or abort)."""

    size: int

    @property
    def temp_path(self) -> Path:
        """Return the local file being written, flushed: readable before `publish`."""
        ...

    def write(self, chunk: bytes | memoryview) -> None: ...

    def hexdigest(self) -> str: ...

    def publish(self, key: str) -> None: ...

    def abort(self) -> None: ...


class Storage(Protocol):
    """A place for blobs."""

    def create_writer(self) -> BlobWriter: ...

    def partial_path(self, upload_id: str) -> Path: ...

    def adopt(self, path: Path) -> BlobWriter: ...

    def iter_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Return the bytes start..end (inclusive); BlobNotFoundError before the first chunk."""
        ...

    def size(self, key: str) -> int:
        """Return the size of `key`; BlobNotFoundError when it is missing."""
        ...

    def delete(self, key: str) -> None: ...

    def check(self) -> None: ...

    def describe(self) -> str: ...
