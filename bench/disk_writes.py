"""Writing an upload's bytes to the disk: the storage's own writer against two plain ways.

An upload ends as a file written 512 KiB at a time, hashed (sha256) as it goes and fsynced at
the end. This writes `--size-mib` MiB of random bytes that way three times over, each run in a
new file in `--dir` (default: the system temp dir, which should be on the disk the hub uses):

- *write, fsync at the end*: nothing in between, so the whole file sits in the page cache;
- *fdatasync every 64 MiB*: what the storage did before 2026-12-05, waiting for each window;
- *storage writer*: trainhub's LocalStorage writer, which hands each window to the disk without
  waiting and lets the pages already written leave the page cache (storage/spool.py).

Each way runs twice: after `--pause-s` seconds of doing nothing, and at once again. On a VM whose
host takes back the memory a guest frees, a page of cache the guest has not touched for a while
costs a fault in the host; the first run shows that cost, the second does not (docs/performance.md,
"Uploads hand their pages to the disk"). Prints MiB/s and the CPU time of this process per GiB.

Linux only (fdatasync, and the storage writer's fadvise).

Run: .venv/bin/python bench/disk_writes.py [--size-mib 1024] [--pause-s 65] [--dir DIR]
"""

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import MIB, heading, print_table

from trainhub.server.storage import LocalStorage

CHUNK_BYTES = 512 * 1024
WINDOW_BYTES = 64 * MIB


def plain(folder: Path, chunks: list[memoryview], rounds: int, *, window_sync: bool) -> None:
    """Write, hash and fsync a file the plain way; with `window_sync`, fdatasync every window."""
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".bench-") as file:
        written = synced = 0
        for _ in range(rounds):
            for chunk in chunks:
                file.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                if window_sync and written - synced >= WINDOW_BYTES:
                    file.flush()
                    os.fdatasync(file.fileno())
                    synced = written
        file.flush()
        os.fsync(file.fileno())


def storage_writer(folder: Path, chunks: list[memoryview], rounds: int) -> None:
    """Write the file with trainhub's local storage writer, then publish (fsync) and delete it."""
    storage = LocalStorage(folder / "blobs")
    writer = storage.create_writer()
    for _ in range(rounds):
        for chunk in chunks:
            writer.write(chunk)
    writer.publish("bench/blob")
    (folder / "blobs" / "bench" / "blob").unlink()


def timed(run: Callable[[], None]) -> tuple[float, float]:
    """Return the wall time and this process's CPU time of `run()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of each file")
    parser.add_argument("--pause-s", type=float, default=65, help="idle time before each way")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go")
    args = parser.parse_args()
    block = os.urandom(64 * MIB)
    chunks = [memoryview(block)[i : i + CHUNK_BYTES] for i in range(0, len(block), CHUNK_BYTES)]
    rounds = max(1, args.size_mib // 64)
    gib = rounds * 64 * MIB / 1024**3
    heading(f"disk writes: {rounds * 64} MiB in 512 KiB chunks, sha256, fsync at the end")
    with tempfile.TemporaryDirectory(prefix="trainhub-bench-disk-", dir=args.dir) as tmp:
        folder = Path(tmp)
        ways: dict[str, Callable[[], None]] = {
            "write, fsync at the end": lambda: plain(folder, chunks, rounds, window_sync=False),
            "fdatasync every 64 MiB": lambda: plain(folder, chunks, rounds, window_sync=True),
            "storage writer": lambda: storage_writer(folder, chunks, rounds),
        }
        rows = []
        for name, run in ways.items():
            time.sleep(args.pause_s)
            for state in (f"after {args.pause_s:.0f} s idle", "at once again"):
                wall, cpu = timed(run)
                rate = rounds * 64 / wall
                rows.append((name, state, rate, cpu / gib))
    print_table(["way", "when", "MiB/s", "CPU s per GiB"], rows)


if __name__ == "__main__":
    main()
