"""An upload temp file's sha256, computed by the hashing thread behind the writes (spool.py).

The digest must be that of exactly the bytes written, in order: chunks hashed later and chunks
hashed at once mixed, buffers the caller changes after `write` returns, a digest asked for in
the middle of an upload, several writers in several threads sharing the one hashing thread. A
process forked after the thread started must get a thread of its own instead of waiting
forever for its parent's. An aborted writer leaves nothing queued.
"""

import hashlib
import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from trainhub.server.storage import spool
from trainhub.server.storage.spool import HASH_AHEAD_BYTES, HASH_INLINE_BELOW, SpoolWriter


class Writer(SpoolWriter):
    def publish(self, key: str) -> None:
        self._file.close()


def chunks(seed: int) -> list[bytes | memoryview | bytearray]:
    """A mix of every kind of chunk: small first, views of bytes, buffers that change."""
    big = os.urandom(3 * HASH_AHEAD_BYTES)
    mixed: list[bytes | memoryview | bytearray] = [os.urandom(100 + seed)]  # small, none waiting
    for i in range(40):
        mixed.append(memoryview(big)[i * 100_000 : (i + 1) * 100_000 + i])  # hashed later
        mixed.append(os.urandom(i * 97))  # small ones, hashed at once or queued behind
        mixed.append(bytearray(os.urandom(HASH_INLINE_BELOW * 2)))  # changes after write
        mixed.append(memoryview(bytearray(os.urandom(HASH_INLINE_BELOW * 2))).toreadonly())
    return mixed


def write_all(writer: SpoolWriter, pieces: list[bytes | memoryview | bytearray]) -> "hashlib._Hash":
    """Write `pieces`, changing every mutable one once written; return the expected sha256."""
    expected = hashlib.sha256()
    for piece in pieces:
        expected.update(bytes(piece))  # the bytes as they were when written
        writer.write(piece)
        if isinstance(piece, bytearray):
            piece[:8] = b"changed!"  # the caller reuses its buffer at once
        elif isinstance(piece, memoryview) and isinstance(piece.obj, bytearray):
            piece.obj[:8] = b"changed!"  # a read-only view of a buffer that still changes
    return expected


def test_the_digest_is_of_the_bytes_written_in_their_order(tmp_path: Path) -> None:
    writer = Writer(tmp_path)
    expected = write_all(writer, chunks(0))
    assert writer.hexdigest() == expected.hexdigest()
    assert writer.digest() == expected.digest()
    more = os.urandom(HASH_INLINE_BELOW * 4)
    writer.write(more)
    expected.update(more)
    assert writer.hexdigest() == expected.hexdigest()  # asked again after more writes
    writer.publish("x")
    assert hashlib.sha256(writer.temp_path.read_bytes()).hexdigest() == expected.hexdigest()


def test_writers_in_several_threads_each_get_their_own_digest(tmp_path: Path) -> None:
    writers = [Writer(tmp_path) for _ in range(4)]
    with ThreadPoolExecutor(4) as threads:
        expected = list(threads.map(lambda i: write_all(writers[i], chunks(i)), range(4)))
    assert [w.hexdigest() for w in writers] == [e.hexdigest() for e in expected]
    for writer in writers:
        writer.abort()


def test_an_aborted_writer_leaves_nothing_queued(tmp_path: Path) -> None:
    writer = Writer(tmp_path)
    for _ in range(8):
        writer.write(os.urandom(HASH_AHEAD_BYTES // 4))
    writer.abort()
    assert not writer._hashing and writer._hashing_bytes == 0
    assert not writer.temp_path.exists()


def _hash_in_child(folder: str, results: "multiprocessing.Queue[str]") -> None:
    writer = Writer(Path(folder))
    writer.write(b"y" * (HASH_AHEAD_BYTES * 2))
    results.put(writer.hexdigest())
    writer.abort()


def test_a_process_forked_after_the_hashing_thread_started_hashes_too(tmp_path: Path) -> None:
    parent = Writer(tmp_path)
    parent.write(b"x" * (HASH_AHEAD_BYTES * 2))  # the parent's hashing thread is running
    assert parent.hexdigest() == hashlib.sha256(b"x" * (HASH_AHEAD_BYTES * 2)).hexdigest()
    parent.abort()
    assert spool._hasher is not None
    fork = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[str] = fork.Queue()
    child = fork.Process(target=_hash_in_child, args=(str(tmp_path), results))
    child.start()
    child.join(timeout=60)
    if child.is_alive():  # waiting for a thread that only exists in the parent
        child.kill()
        child.join()
    assert child.exitcode == 0
    assert results.get(timeout=5) == hashlib.sha256(b"y" * (HASH_AHEAD_BYTES * 2)).hexdigest()
