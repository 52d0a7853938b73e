"""Blobs in a local folder: temp file, fsync, hard link, fsync directory (docs/security.md §2.10).

A blob is published by linking its temp file under its key: it appears whole or not at all, and
an existing blob is never replaced (keys name the content's hash). A resumable upload collects in
`partial/<upload id>` of the same folder, so replicas that share the folder continue each other's
uploads; a request appends under an exclusive lock on that file (flock), which the kernel drops
when the process dies (docs/decisions/0022-resumable-uploads-on-any-replica.md).
"""

import fcntl
import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from trainhub.server.filemodes import create_private_file, make_private_dir, make_private_dirs
from trainhub.server.storage.base import (
    BlobNotFoundError,
    Leftover,
    PartialConflictError,
    Progress,
    StorageError,
    StoredBlob,
    check_key,
    is_server_key,
)
from trainhub.server.storage.spool import (
    CHUNK_BYTES,
    SpoolWriter,
    check_writable,
    modified_at,
    partial_file,
    partial_files_in,
    sweep_temp_files,
    temp_leftovers,
)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobWriter(SpoolWriter):
    """A temp file in the storage folder's tmp/, renamed into place when published."""

    def __init__(self, root: Path, existing: Path | None = None) -> None:
        super().__init__(root / "tmp", existing)
        self._root = root

    def publish(self, key: str) -> None:
        """Make the blob visible under `key`, durably and atomically; never replace one.

        A hard link makes the blob appear whole or not at all and fails when the key exists:
        keys name the content's hash, so the blob there is the same one, and it is kept.
        """
        target = self._root / check_key(key)
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            make_private_dirs(target.parent)
            try:
                os.link(self._path, target)
            except FileExistsError:
                _check_same(target, self.size)
            _fsync_dir(target.parent)
        except OSError as exc:
            raise StorageError(f"cannot publish to storage: {exc.strerror}") from exc
        finally:
            self.abort()


class FileAppender:
    """One request's bytes appended to a partial file, which it holds locked meanwhile.

    Bytes past the recorded offset were never acknowledged (a request cut off, or a server
    killed before recording them), so they are cut away first.
    """

    def __init__(self, path: Path, offset: int) -> None:
        try:
            self._file = path.open("r+b")
        except FileNotFoundError as exc:
            raise PartialConflictError(
                "the storage folder of this server does not hold the bytes of this upload; "
                "replicas must share one storage folder (docs/deployment.md)"
            ) from exc
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._file.close()
            raise PartialConflictError("another request is appending to this upload") from exc
        self._offset, self._written = offset, 0
        self._file.seek(offset)
        self._file.truncate()

    def write(self, chunk: bytes) -> Progress | None:
        """Append `chunk`; nothing is recorded before `keep` (the file is fsynced once)."""
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise StorageError(f"cannot write the upload's file: {exc.strerror}") from exc
        self._written += len(chunk)
        return None

    def keep(self) -> Progress:
        """Flush and fsync what was written; return the offset it reaches."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise StorageError(f"cannot write the upload's file: {exc.strerror}") from exc
        return Progress(self._offset + self._written, {})

    def drop(self) -> None:
        """Cut the file back to where this request started."""
        self._file.flush()
        self._file.truncate(self._offset)
        self._written = 0

    def recorded(self) -> None:
        """Nothing to clean once progress is recorded: the file is the only copy."""

    def close(self) -> None:
        """Close the file, which releases the lock."""
        self._file.close()


def _check_same(target: Path, size: int) -> None:
    found = target.stat().st_size
    if found != size:
        raise StorageError(
            f"{target} already holds {found} bytes, not the {size} uploaded; it was not "
            "replaced (remove that file if it is damaged)"
        )


def _read_range(file: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    with file:
        file.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = file.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


# A temp file unwritten for this long is left by a dead process: a live upload writes at least
# every `body_idle_timeout_s` and ends within `body_deadline_s` (docs/settings.md).
SHARED_TEMP_MIN_AGE_S = 3600.0


class LocalStorage:
    """Storage in a folder of the data directory."""

    def __init__(self, root: Path, *, sweep: bool = True) -> None:
        self.root = root.resolve()
        make_private_dir(self.root)
        make_private_dirs(self.root / "tmp")
        if sweep:  # a server starting; not `trainhub gc` beside a running one
            # replicas may share this folder: leave the temp files another one may still write
            sweep_temp_files(self.root / "tmp", SHARED_TEMP_MIN_AGE_S)

    def create_writer(self) -> LocalBlobWriter:
        """Start a new blob."""
        return LocalBlobWriter(self.root)

    def partial_path(self, upload_id: str) -> Path:
        """Return the file that collects a resumable upload (kept across restarts)."""
        return partial_file(self.root / "partial", upload_id)

    def start_partial(self, upload_id: str) -> dict[str, Any]:
        """Create the upload's empty file; the file is all its state."""
        create_private_file(self.partial_path(upload_id))
        return {}

    def append_partial(
        self,
        upload_id: str,
        state: dict[str, Any],
        offset: int,
        length: int,
        reserve_part: Callable[[], int],
    ) -> FileAppender:
        """Open the upload's file at `offset`, locked against every other request."""
        return FileAppender(self.partial_path(upload_id), offset)

    def finish_partial(self, upload_id: str, state: dict[str, Any], length: int) -> LocalBlobWriter:
        """Return a writer for the complete file, hashed by reading it once."""
        path = self.partial_path(upload_id)
        if not path.is_file() or path.stat().st_size != length:
            raise PartialConflictError(
                f"the file of upload {upload_id} does not hold its {length} bytes"
            )
        return LocalBlobWriter(self.root, existing=path)

    def discard_partial(self, upload_id: str) -> None:
        """Remove the upload's file."""
        self.partial_path(upload_id).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path:
        """Return the file that holds `key`."""
        return self.root / check_key(key)

    def open(self, key: str) -> BinaryIO:
        """Open the blob `key` for reading."""
        try:
            return self.local_path(key).open("rb")
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"blob {key!r} is missing from storage") from exc

    def iter_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Return the bytes start..end (inclusive) of `key` in chunks; the file opens at once."""
        return _read_range(self.open(key), start, end)

    def size(self, key: str) -> int:
        """Return the size of `key` in bytes."""
        try:
            return self.local_path(key).stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"blob {key!r} is missing from storage") from exc

    def delete(self, key: str) -> None:
        """Remove `key`; a missing blob is not an error."""
        self.local_path(key).unlink(missing_ok=True)

    def iter_blobs(self) -> Iterator[StoredBlob]:
        """Return every published blob: the files under the root whose path is a storage key."""
        for path in sorted(self.root.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if not is_server_key(key):  # tmp/, partial/ and anything not made by the server
                continue
            try:
                if path.is_file():
                    yield StoredBlob(key, path.stat().st_size, modified_at(path))
            except FileNotFoundError:  # deleted while listing
                continue

    def leftovers(self) -> list[Leftover]:
        """Return the temp files of uploads in flight or interrupted."""
        return temp_leftovers(self.root / "tmp")

    def partials(self) -> list[Leftover]:
        """Return the files of resumable uploads, each named by its upload id."""
        found = []
        for path in partial_files_in(self.root / "partial"):
            try:
                started = modified_at(path)
            except FileNotFoundError:  # finished or dropped meanwhile
                continue
            remove = partial(path.unlink, missing_ok=True)
            found.append(
                Leftover(f"resumable-upload file {path}", started, remove, upload_id=path.name)
            )
        return found

    def presign_download(
        self, key: str, *, filename: str, media_type: str, expires_s: int
    ) -> str | None:
        """Return None: a local folder is read through the server only."""
        return None

    def check(self) -> None:
        """Raise StorageError unless a blob can be written and removed."""
        check_writable(self.create_writer, f"storage folder {self.root}")

    def describe(self) -> str:
        """Return where blobs are kept, for logs."""
        return f"local folder {self.root}"
