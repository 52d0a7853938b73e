"""Blobs in a local folder: temp file -> fsync -> rename -> fsync directory (security-notes §10)."""

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from trainhub.server.storage.base import StorageError, check_key

CHUNK_BYTES = 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobWriter:
    """A temp file in the storage folder, hashed as it is written."""

    def __init__(self, root: Path, existing: Path | None = None) -> None:
        self._root = root
        self._hash = hashlib.sha256()
        self.size = 0
        if existing is None:
            fd, name = tempfile.mkstemp(prefix=".upload-", dir=root / "tmp")
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

    def write(self, chunk: bytes) -> None:
        """Append `chunk` to the blob."""
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            raise StorageError(f"cannot write to storage: {exc.strerror}") from exc
        self._hash.update(chunk)
        self.size += len(chunk)

    def hexdigest(self) -> str:
        """Return the sha256 of what was written so far."""
        return self._hash.hexdigest()

    def publish(self, key: str) -> None:
        """Make the blob visible under `key`, durably and atomically."""
        target = self._root / check_key(key)
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            target.parent.mkdir(parents=True, exist_ok=True)
            self._path.replace(target)
            _fsync_dir(target.parent)
        except OSError as exc:
            self.abort()
            raise StorageError(f"cannot publish to storage: {exc.strerror}") from exc

    def abort(self) -> None:
        """Throw the blob away."""
        self._file.close()
        self._path.unlink(missing_ok=True)


class LocalStorage:
    """Storage in a folder of the data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self._sweep_temp_files()

    def _sweep_temp_files(self) -> None:
        # Temp files left by a killed process are never published: remove them at start-up.
        for stale in (self.root / "tmp").glob(".upload-*"):
            stale.unlink(missing_ok=True)

    def create_writer(self) -> LocalBlobWriter:
        """Start a new blob."""
        return LocalBlobWriter(self.root)

    def partial_path(self, upload_id: str) -> Path:
        """Return the file that collects a resumable upload (kept across restarts)."""
        folder = self.root / "partial"
        folder.mkdir(exist_ok=True)
        return folder / check_key(f"partial/{upload_id}").split("/")[1]

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
            raise StorageError(f"blob {key!r} is missing from storage") from exc

    def iter_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Yield the bytes start..end (inclusive) of `key` in chunks."""
        with self.open(key) as file:
            file.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = file.read(min(CHUNK_BYTES, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def size(self, key: str) -> int:
        """Return the size of `key` in bytes."""
        return self.local_path(key).stat().st_size

    def delete(self, key: str) -> None:
        """Remove `key`; a missing blob is not an error."""
        self.local_path(key).unlink(missing_ok=True)

    def check(self) -> None:
        """Raise StorageError unless a blob can be written and removed."""
        try:
            probe = self.create_writer()
            probe.write(b"ok")
            probe.abort()
        except (OSError, StorageError) as exc:
            raise StorageError(f"storage folder {self.root} is not writable: {exc}") from exc

    def describe(self) -> str:
        """Return where blobs are kept, for logs."""
        return f"local folder {self.root}"
