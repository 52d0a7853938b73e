"""Blobs in a local folder: temp file, fsync, hard link, fsync directory (docs/security.md §2.10).

A blob is published by linking its temp file under its key: it appears whole or not at all, and
an existing blob is never replaced (keys name the content's hash).
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from trainhub.server.filemodes import make_private_dir, make_private_dirs
from trainhub.server.storage.base import (
    BlobNotFoundError,
    Leftover,
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


class LocalStorage:
    """Storage in a folder of the data directory."""

    def __init__(self, root: Path, *, sweep: bool = True) -> None:
        self.root = root.resolve()
        make_private_dir(self.root)
        make_private_dirs(self.root / "tmp")
        if sweep:  # a server starting; not `trainhub gc` beside a running one
            sweep_temp_files(self.root / "tmp")

    def create_writer(self) -> LocalBlobWriter:
        """Start a new blob."""
        return LocalBlobWriter(self.root)

    def partial_path(self, upload_id: str) -> Path:
        """Return the file that collects a resumable upload (kept across restarts)."""
        return partial_file(self.root / "partial", upload_id)

    def adopt(self, path: Path) -> LocalBlobWriter:
        """Return a writer for a finished partial file, ready to publish like any other blob."""
        return LocalBlobWriter(self.root, existing=path)

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

    def partial_files(self) -> list[Path]:
        """Return the files of resumable uploads."""
        return partial_files_in(self.root / "partial")

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
