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
from typing import Any, Protocol

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
    upload_id: str | None = None  # the resumable upload this belongs to (partials() only)


class PartialConflictError(StorageError):
    """A resumable upload's bytes changed under this request (another replica appended)."""


class PartialLostError(StorageError):
    """A resumable upload's bytes are nowhere this server looks (kept by an older version)."""


@dataclass(frozen=True)
class Progress:
    """How far a resumable upload's bytes are durable: `offset`, and the backend's `state`.

    `state` is JSON the database keeps on the upload's row (the S3 parts and tail object, say),
    so that any replica can continue from it.
    """

    offset: int
    state: dict[str, Any]


class PartialAppender(Protocol):
    """One request's bytes going into a resumable upload, from the offset it was opened at."""

    def write(self, chunk: bytes) -> Progress | None:
        """Append `chunk`; return the progress to record when more bytes became durable."""
        ...

    def keep(self) -> Progress:
        """Make every byte written durable; return the progress to record."""
        ...

    def drop(self) -> None:
        """Forget every byte written by this request (a part whose checksum failed)."""
        ...

    def recorded(self) -> None:
        """The last progress returned is recorded: remove what it superseded."""
        ...

    def close(self) -> None:
        """Release what the request held (the file lock, the buffer)."""
        ...


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

    def start_partial(self, upload_id: str) -> dict[str, Any]:
        """Make room for a resumable upload's bytes; return its first state (for the row)."""
        ...

    def append_partial(
        self,
        upload_id: str,
        state: dict[str, Any],
        offset: int,
        length: int,
        reserve_part: Callable[[], int],
    ) -> PartialAppender:
        """Open a resumable upload at its recorded `offset` and `state` to append to it.

        `reserve_part` returns a part number no other request of this upload gets (a database
        counter): two replicas appending at once never overwrite each other's parts. Raises
        PartialConflictError when another request holds or changed the bytes.
        """
        ...

    def finish_partial(self, upload_id: str, state: dict[str, Any], length: int) -> BlobWriter:
        """Return a writer holding a complete upload's bytes, hashed, ready to publish."""
        ...

    def discard_partial(self, upload_id: str) -> None:
        """Remove everything a resumable upload stored (idempotent)."""
        ...

    def partials(self) -> list[Leftover]:
        """Return what resumable uploads stored, each with its upload id (for the clean-up)."""
        ...

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

    def presign_download(
        self, key: str, *, filename: str, media_type: str, expires_s: int
    ) -> str | None:
        """Return a URL that reads `key` straight from storage, None when there is no such URL."""
        ...

    def check(self) -> None: ...

    def describe(self) -> str: ...
