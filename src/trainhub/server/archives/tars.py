"""Tar and tar.gz archives: member checks and a stream guard against oversized headers."""

import contextlib
import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, NoReturn

from trainhub.server.archives.catalog import ArchiveReport, Catalog
from trainhub.server.archives.errors import ArchiveError, damaged, quote, special_file
from trainhub.server.archives.limits import MIB


class _GuardedStream:
    """A read-only view of a tar stream that refuses to go further than its entries explain.

    tarfile reads pax and GNU long-name headers into memory in one piece, and a gzip stream can
    hide gigabytes of them, or of trailing data, in a small upload.
    """

    def __init__(
        self, stream: io.BufferedIOBase, allowance: Callable[[], int], filename: str
    ) -> None:
        self._stream = stream
        self._allowance = allowance
        self._filename = filename
        self.last_read: tuple[int, bytes] = (-1, b"")  # (offset, data) of the latest read

    def read(self, size: int = -1, /) -> bytes:
        start = self._stream.tell()
        if size < 0:
            self._refuse()
        self._check_reach(start + size)
        data = self._stream.read(size)
        self.last_read = (start, data)
        return data

    def seek(self, pos: int, /) -> int:
        self._check_reach(pos)
        return self._stream.seek(pos)

    def tell(self) -> int:
        return self._stream.tell()

    def write(self, data: bytes, /) -> int:
        raise io.UnsupportedOperation("read-only stream")

    def close(self) -> None:
        """Leave closing to the owner of the underlying stream."""

    def drain(self) -> None:
        """Read to the end, so gzip verifies its checksum and length (a cut stream raises)."""
        while True:
            room = self._allowance() - self._stream.tell()
            chunk = self._stream.read(max(1, min(room, MIB)))
            if not chunk:
                return
            if len(chunk) > room:
                self._refuse()

    def _check_reach(self, end: int) -> None:
        if end > self._allowance():
            self._refuse()

    def _refuse(self) -> NoReturn:
        raise ArchiveError(
            f"{quote(self._filename)} holds more data than its files account for (oversized "
            "tar headers or hidden trailing data, a known decompression-bomb trick); re-create "
            "it with a standard tar tool and upload again."
        )


def inspect_tar(path: Path, catalog: Catalog, gzipped: bool) -> ArchiveReport:
    filename = catalog.filename
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(path.open("rb"))
        stream = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")) if gzipped else raw
        guard = _GuardedStream(stream, catalog.stream_allowance, filename)
        tf = stack.enter_context(tarfile.open(fileobj=guard, mode="r:"))
        for member in tf:  # streaming: each member is checked before its data is skipped
            _check_tar_member(member, filename)
            catalog.add(member.name, member.isdir(), member.size)
        _check_tar_end(tf.offset, guard, filename)
        if gzipped:
            guard.drain()
        return catalog.report("tar", lambda name: _open_tar_member(tf, name, filename))


def _check_tar_member(member: tarfile.TarInfo, filename: str) -> None:
    if member.isreg() or member.isdir():
        return
    if member.issym() or member.islnk():
        kind = "symbolic link" if member.issym() else "hard link"
        raise ArchiveError(
            f"{quote(filename)} contains a {kind}, {quote(member.name)}; archive the files "
            "themselves (for example `tar --dereference --hard-dereference`) and upload again."
        )
    raise ArchiveError(special_file(filename, member.name))


def _check_tar_end(offset: int, guard: _GuardedStream, filename: str) -> None:
    """Require the end-of-archive block where iteration stopped.

    tarfile ends iteration quietly at a cut or garbled header; `tar xf` on the trainer does not.
    """
    if guard.last_read != (offset, bytes(tarfile.BLOCKSIZE)):
        raise ArchiveError(damaged(filename))


def _open_tar_member(tf: tarfile.TarFile, name: str, filename: str) -> IO[bytes]:
    fh = tf.extractfile(tf.getmember(name))
    if fh is None:  # only for non-regular members, which were refused already
        raise ArchiveError(damaged(filename))
    return fh
