"""The Storage protocol: where blobs (weights, checkpoints, datasets, images) live.

Keys are built by the server from server-made ids and content hashes, never from client text
(docs/security.md §2.1). Writes stream through a BlobWriter that hashes on the way and publishes
atomically: a reader sees no file or the complete file, never a partial one.
"""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

_KEY_RE = re.compile(r"^[a-z]+(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){1,4}$")


class StorageError(Exception):
    """The storage backend failed (disk full, permissions, unreachable bucket)."""


class StorageConfigError(StorageError):
    """The storage refuses us for good: wrong credentials, no such bucket (not a passing fault)."""


class BlobNotFoundError(StorageError):
    """The blob asked for is not in storage."""


def check_key(key: str) -> str:
    """Return `key` if it is a well-formed server-made storage key, else raise ValueError."""
    if not is_key(key):
        raise ValueError(f"malformed storage key {key!r}")
    return key


# the first folder of every key the server makes (the healthz probe is made by check())
SERVER_FOLDERS = ("models", "datasets", "projects", "exports", "healthz")


def is_key(key: str) -> bool:
    """Tell whether `key` is a well-formed storage key (something the server could have made)."""
    return bool(_KEY_RE.match(key)) and ".." not in key


def is_server_key(key: str) -> bool:
    """Tell whether `key` is one the server makes: well-formed, in one of SERVER_FOLDERS.

    Listings keep only these, so that the clean-up never touches what else shares a bucket.
    """
    return is_key(key) and key.split("/", 1)[0] in SERVER_FOLDERS


@dataclass(frozen=True)
class StoredBlob:
    """A published blob as storage lists it."""

    key: str
    size_bytes: int
    modified_at: datetime


@dataclass(frozen=True)
class Leftover:
    """What an interrupted upload left behind: a temp file, or an unfinished multipart upload."""

    what: str  # for the operator: "temp file /data/blobs/tmp/.upload-x", ...
    started_at: datetime
    remove: Callable[[], None]


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

    def iter_blobs(self) -> Iterator[StoredBlob]:
        """Return every published blob (for the clean-up, services/gc.py)."""
        ...

    def leftovers(self) -> list[Leftover]:
        """Return the temp files and unfinished multipart uploads of interrupted uploads."""
        ...

    def partial_files(self) -> list[Path]:
        """Return the files of resumable uploads that this server holds."""
        ...

    def presign_download(
        self, key: str, *, filename: str, media_type: str, expires_s: int
    ) -> str | None:
        """Return a URL that reads `key` straight from storage, None when there is no such URL."""
        ...

    def check(self) -> None: ...

    def describe(self) -> str: ...
