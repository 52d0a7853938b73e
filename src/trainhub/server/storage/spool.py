"""Upload temp files: written and hashed chunk by chunk, then published by a storage backend.

Every backend receives a blob the same way: a temp file named `.upload-*` in a spool folder,
hashed (sha256) as it is written. The backend's writer adds `publish`: a rename for a local
folder, an upload for a bucket. Temp files are never published after a crash, so a start-up
sweep removes them.

The hash runs in the process's hashing thread (one thread, shared by every writer, each
writer's chunks in order), at most HASH_AHEAD_BYTES behind the writes: sha256 takes about as
long as the rest of an upload's work in the worker thread, and `hashlib` releases the GIL, so it
overlaps with the receiving of the next chunks. Only chunks of `bytes` are hashed later; the
digest waits for them. Why and what it costs:
docs/decisions/0031-the-upload-hash-in-the-hashing-thread.md.
"""

import hashlib
import os
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from trainhub.server.filemodes import make_private_dirs
from trainhub.server.storage.base import Leftover, StorageError, check_key, is_key

CHUNK_BYTES = 1024 * 1024
WRITE_BACK_EVERY_BYTES = 64 * 1024 * 1024
TEMP_PREFIX = ".upload-"
HASH_AHEAD_BYTES = 2 * 1024 * 1024  # at most this much of an upload waits for its hash
HASH_INLINE_BELOW = 64 * 1024  # a small chunk with nothing waiting is hashed at once

_hasher: ThreadPoolExecutor | None = None
_hasher_lock = threading.Lock()


def _hash_thread() -> ThreadPoolExecutor:
    """Return this process's hashing thread (made at first use; a forked child makes its own)."""
    global _hasher
    with _hasher_lock:
        if _hasher is None:
            _hasher = ThreadPoolExecutor(1, thread_name_prefix="trainhub-sha256")
        return _hasher


def _forget_hash_thread() -> None:
    global _hasher, _hasher_lock
    _hasher, _hasher_lock = None, threading.Lock()  # the parent's thread does not exist here


os.register_at_fork(after_in_child=_forget_hash_thread)


class SpoolWriter(ABC):
    """A temp file in `folder` (or an existing file to adopt), hashed as it is written.

    `hand_to_disk`: whether the file's pages go to the disk while the upload goes on (see
    `write`). A backend that reads the file back when it publishes (a bucket's spool) keeps them.
    """

    hand_to_disk = True

    def __init__(self, folder: Path, existing: Path | None = None) -> None:
        self._hash = hashlib.sha256()
        self._hashing: deque[tuple[Future[None], int]] = deque()  # chunks not hashed yet
        self._hashing_bytes = 0
        self._hash_failed: BaseException | None = None
        self.size = 0
        self._handed = 0
        if existing is None:
            fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
            self._file = os.fdopen(fd, "wb")
            self._path = Path(name)
            return
        self._path = existing
        with existing.open("rb") as file:  # an adopted file: hash what is already there
            while chunk := file.read(CHUNK_BYTES):
                self._hash.update(chunk)
                self.size += len(chunk)
        self._file = existing.open("ab")

    @property
    def temp_path(self) -> Path:
        """Return the file being written, flushed so that a reader sees every byte so far."""
        if not self._file.closed:
            self._file.flush()
        return self._path

    def write(self, chunk: bytes | memoryview) -> None:
        """Append `chunk` to the blob.

        Every WRITE_BACK_EVERY_BYTES (with `hand_to_disk`) the bytes written so far are handed
        to the disk without waiting for it, so the fsync at publication has little left to do
        and a large upload does not fill the page cache
        (docs/decisions/0027-uploads-hand-their-pages-to-the-disk.md).
        """
        try:
            self._file.write(chunk)
            self.size += len(chunk)
            if self.hand_to_disk and self.size - self._handed >= WRITE_BACK_EVERY_BYTES:
                self._file.flush()
                _write_back(self._file.fileno())
                self._handed = self.size
        except OSError as exc:
            self.abort()
            raise StorageError(f"cannot write the upload's temp file: {exc.strerror}") from exc
        self._hash_later(chunk)

    def _hash_later(self, chunk: bytes | memoryview) -> None:
        """Hash `chunk` in the hashing thread, in order; at once when it is small or may change.

        Only a chunk of `bytes` (or a view of `bytes`) is kept for later: any other buffer's
        owner may change it once `write` returned.
        """
        view_of_bytes = isinstance(chunk, memoryview) and isinstance(chunk.obj, bytes)
        if not (isinstance(chunk, bytes) or view_of_bytes) or (
            len(chunk) < HASH_INLINE_BELOW and not self._hashing
        ):
            self._hashed().update(chunk)
            return
        try:
            done = _hash_thread().submit(self._hash.update, chunk)
        except RuntimeError:  # the interpreter is shutting down: no new work for threads
            self._hashed().update(chunk)
            return
        self._hashing.append((done, len(chunk)))
        self._hashing_bytes += len(chunk)
        while self._hashing_bytes > HASH_AHEAD_BYTES:
            self._wait_for_oldest()

    def _wait_for_oldest(self) -> None:
        done, size = self._hashing.popleft()
        self._hashing_bytes -= size
        try:
            done.result()
        except BaseException as exc:  # a chunk is missing from the hash: no digest is right now
            self._hash_failed = exc
            raise

    def _hashed(self) -> "hashlib._Hash":
        """Return the hash, once every chunk written so far is in it."""
        while self._hashing:
            self._wait_for_oldest()
        if self._hash_failed is not None:
            raise StorageError("the upload's sha256 could not be computed") from self._hash_failed
        return self._hash

    def hexdigest(self) -> str:
        """Return the sha256 of what was written so far."""
        return self._hashed().hexdigest()

    def digest(self) -> bytes:
        """Return the sha256 of what was written so far, as bytes."""
        return self._hashed().digest()

    @abstractmethod
    def publish(self, key: str) -> None:
        """Make the blob visible under `key`, completely or not at all."""

    def abort(self) -> None:
        """Throw the blob away (nothing happens after a publish)."""
        for done, _ in self._hashing:  # its chunks are not hashed for nothing, nor kept
            done.cancel()
        self._hashing.clear()
        self._hashing_bytes = 0
        self._file.close()
        self._path.unlink(missing_ok=True)


def _write_back(fd: int) -> None:
    """Start writing `fd`'s dirty pages to the disk, and drop its pages already written.

    POSIX_FADV_DONTNEED does both on Linux, waiting for the disk only when its queue is full:
    the pages of the last window are on their way to the disk, those of the window before are
    clean by now and leave the page cache, so an upload recycles a few windows of memory.
    Waiting for each window instead (fdatasync) stalled the upload every 64 MiB, and on a VM each
    new page of cache can cost a fault in the host.
    """
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    else:  # macOS: no fadvise; flush the window and wait for it
        os.fsync(fd)


def check_writable(create_writer: Callable[[], SpoolWriter], folder: str) -> None:
    """Raise StorageError unless a temp file can be written and removed (`folder` names it)."""
    try:
        probe = create_writer()
        probe.write(b"ok")
        probe.abort()
    except (OSError, StorageError) as exc:
        raise StorageError(f"{folder} is not writable: {exc}") from exc


def sweep_temp_files(folder: Path, min_age_s: float = 0.0) -> None:
    """Remove the temp files a killed process left in `folder`; they are never published.

    With `min_age_s`, only files unwritten for that long go: in a folder that other live
    processes share, a younger file may be an upload in flight.
    """
    cutoff = time.time() - min_age_s
    for stale in folder.glob(f"{TEMP_PREFIX}*"):
        try:
            if min_age_s <= 0 or stale.stat().st_mtime < cutoff:
                stale.unlink()
        except FileNotFoundError:
            pass


def sweep_folder(folder: Path) -> None:
    """Remove `folder` and the files in it, if it is there."""
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink(missing_ok=True)
        folder.rmdir()


def partial_file(folder: Path, upload_id: str) -> Path:
    """Return the file in `folder` that collects the resumable upload `upload_id`."""
    make_private_dirs(folder)
    return folder / check_key(f"partial/{upload_id}").split("/")[1]


def modified_at(path: Path) -> datetime:
    """Return when `path` was last written, in UTC."""
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def temp_leftovers(folder: Path) -> list[Leftover]:
    """Return the upload temp files in `folder` (of uploads in flight, or of a killed process)."""
    found = []
    for path in sorted(folder.glob(f"{TEMP_PREFIX}*")) if folder.is_dir() else []:
        try:
            started = modified_at(path)
        except FileNotFoundError:  # finished meanwhile
            continue
        found.append(Leftover(f"temp file {path}", started, partial(path.unlink, missing_ok=True)))
    return found


def partial_files_in(folder: Path) -> list[Path]:
    """Return the resumable-upload files in `folder` (named by their upload id)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and is_key(f"partial/{p.name}"))
