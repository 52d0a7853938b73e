"""Local storage: streamed, hashed, atomic publication; nothing partial is ever visible."""

import ctypes
import hashlib
import mmap
import os
import sys
import time
from pathlib import Path

import pytest

from trainhub.server.storage import (
    BlobNotFoundError,
    LocalStorage,
    StorageError,
    check_key,
    from_url,
    spool,
)
from trainhub.server.storage.local import SHARED_TEMP_MIN_AGE_S


def test_a_published_blob_is_complete_and_hashed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    writer = storage.create_writer()
    chunks = [b"a" * 1000, b"b" * 5000, b"c"]
    for chunk in chunks:
        writer.write(chunk)
    assert not (tmp_path / "models/x/best").exists()
    writer.publish("models/x/best")
    data = b"".join(chunks)
    assert writer.hexdigest() == hashlib.sha256(data).hexdigest()
    assert storage.local_path("models/x/best").read_bytes() == data
    assert b"".join(storage.iter_range("models/x/best", 999, 1001)) == b"abb"
    assert list((tmp_path / "tmp").iterdir()) == []


def resident_bytes(path: Path) -> int:
    """Return how many bytes of `path` are in the page cache (mincore(2) on a mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    if size == 0:
        return 0
    pages = (ctypes.c_ubyte * -(-size // mmap.PAGESIZE))()
    with path.open("rb") as file, mmap.mmap(file.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        start = ctypes.c_char.from_buffer(mapped)  # a private mapping: nothing is read or copied
        try:
            address = ctypes.c_void_p(ctypes.addressof(start))
            result = libc.mincore(address, ctypes.c_size_t(size), pages)
        finally:
            del start  # the mapping closes only once nothing points into it
    if result != 0:
        raise OSError(ctypes.get_errno(), "mincore failed")
    return sum(page & 1 for page in pages) * mmap.PAGESIZE


def filesystem_of(path: Path) -> str:
    """Return the type of the file system `path` is on, from /proc/self/mountinfo."""
    best, kind = "", ""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mount_point, fs_type = fields[4], fields[fields.index("-") + 1]
        if path.is_relative_to(mount_point) and len(mount_point) >= len(best):
            best, kind = mount_point, fs_type
    return kind


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="fadvise and mincore as Linux has them"
)
def test_a_large_blob_goes_to_the_disk_as_it_is_written_not_into_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if filesystem_of(tmp_path.resolve()) == "tmpfs":  # no disk: its pages are the file itself
        pytest.skip(f"{tmp_path} is on tmpfs; set TMPDIR to a folder on a disk")
    # 1 MiB windows instead of 64: the file's pages that went to the disk leave the page cache
    # while the upload goes on (the fdatasync of each window this replaced kept all of them)
    monkeypatch.setattr(spool, "WRITE_BACK_EVERY_BYTES", 1024 * 1024)
    writer = LocalStorage(tmp_path).create_writer()
    chunk = os.urandom(256 * 1024)
    digest = hashlib.sha256()
    for _ in range(128):  # 32 MiB
        writer.write(chunk)
        digest.update(chunk)
    size = writer.temp_path.stat().st_size
    assert size == 32 * 1024 * 1024
    assert resident_bytes(writer.temp_path) < size // 2
    writer.publish("models/x/best")
    published = (tmp_path / "models/x/best").read_bytes()
    assert (len(published), hashlib.sha256(published).hexdigest()) == (size, digest.hexdigest())


def test_a_failed_write_back_aborts_the_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_gone(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(spool, "WRITE_BACK_EVERY_BYTES", 1024)
    monkeypatch.setattr(spool, "_write_back", disk_gone)
    writer = LocalStorage(tmp_path).create_writer()
    with pytest.raises(StorageError, match="Input/output error"):
        writer.write(b"x" * 2048)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_aborted_blob_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    writer = storage.create_writer()
    writer.write(b"partial")
    writer.abort()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_temp_files_of_a_killed_process_are_swept_at_start(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    stale = tmp_path / "tmp" / ".upload-stale"
    stale.write_bytes(b"x")
    written = time.time() - SHARED_TEMP_MIN_AGE_S - 60
    os.utime(stale, (written, written))
    # replicas may share the folder: a file written lately is another replica's upload in flight
    (tmp_path / "tmp" / ".upload-in-flight").write_bytes(b"y")
    LocalStorage(tmp_path)
    assert [path.name for path in (tmp_path / "tmp").iterdir()] == [".upload-in-flight"]


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "models/../../x",
        "/etc/passwd",
        "models//x",
        "models/x/..",
        "models",
        "Models/x",
        "models/.hidden",
        "models/a\\b",
    ],
)
def test_keys_that_could_escape_the_folder_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="malformed storage key"):
        check_key(key)
    with pytest.raises(ValueError, match="malformed storage key"):
        LocalStorage(tmp_path).local_path(key)


def test_storage_urls_name_a_folder_or_are_refused(tmp_path: Path) -> None:
    assert isinstance(from_url(f"file://{tmp_path}", tmp_path / "spool"), LocalStorage)
    assert not (tmp_path / "spool").exists()  # a folder keeps its temp files next to its blobs
    with pytest.raises(ValueError, match="unsupported"):
        from_url("ftp://x", tmp_path / "spool")


def test_a_missing_blob_is_a_blob_not_found_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for read in (
        lambda: storage.open("models/x/none"),
        lambda: storage.size("models/x/none"),
        lambda: storage.iter_range("models/x/none", 0, 10),
    ):
        with pytest.raises(BlobNotFoundError, match="missing from storage"):
            read()
    assert issubclass(BlobNotFoundError, StorageError)


def test_a_small_blob_is_readable_in_full_before_it_is_published(tmp_path: Path) -> None:
    writer = LocalStorage(tmp_path).create_writer()
    writer.write(b"\x89PNG\r\n\x1a\n" + b"x" * 92)
    assert writer.temp_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert writer.temp_path.stat().st_size == 100
    writer.abort()
