"""The upload temp file's sha256, computed in a hashing thread behind the writes (storage/spool.py).

The digest must be that of exactly the bytes written, in order: chunks hashed later and chunks
hashed at once mixed, a buffer the caller reuses after `write` returns, a digest asked for in
the middle of an upload. And a process forked after the thread started (a worker) must get a
thread of its own instead of waiting forever for its parent's.
"""

import hashlib
import multiprocessing
import os
from pathlib import Path

from trainhub.server.storage import spool
from trainhub.server.storage.spool import HASH_AHEAD_BYTES, HASH_INLINE_BELOW, SpoolWriter


class Writer(SpoolWriter):
    def publish(self, key: str) -> None:
        self._file.close()


def test_the_digest_is_of_the_bytes_written_in_their_order(tmp_path: Path) -> None:
    writer = Writer(tmp_path)
    expected = hashlib.sha256()
    big = os.urandom(3 * HASH_AHEAD_BYTES)
    reused = bytearray(HASH_INLINE_BELOW * 2)
    pieces: list[bytes | memoryview | bytearray] = []
    for i in range(40):
        pieces.append(memoryview(big)[i * 100_000 : (i + 1) * 100_000 + i])  # hashed later
        pieces.append(os.urandom(i * 97))  # small ones, hashed at once or queued behind
        reused[:] = os.urandom(len(reused))
        pieces.append(reused)  # mutable: hashed before write returns
    for piece in pieces:
        expected.update(bytes(piece))  # the bytes as they were when written
        writer.write(piece)
        if isinstance(piece, bytearray):
            reused[:8] = b"changed!"  # the caller reuses its buffer at once
    assert writer.hexdigest() == expected.hexdigest()
    assert writer.digest() == expected.digest()
    writer.write(big[: HASH_INLINE_BELOW * 4])
    expected.update(big[: HASH_INLINE_BELOW * 4])
    assert writer.hexdigest() == expected.hexdigest()  # asked again after more writes
    writer.publish("x")
    assert hashlib.sha256(writer.temp_path.read_bytes()).hexdigest() == expected.hexdigest()


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
