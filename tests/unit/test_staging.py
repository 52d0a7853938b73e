"""Checkpoints are uploaded from a stable copy: never half-written, never a vanished file."""

import hashlib
import os
import threading
from pathlib import Path

import pytest

from trainhub.client.uploader import stage_file


def test_a_stable_file_is_copied_with_its_hash(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "last.pt").write_bytes(data)
    sha256 = stage_file(tmp_path / "last.pt", tmp_path / "staging" / "1.pt")
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "staging" / "1.pt").read_bytes() == data


def test_a_file_rewritten_during_the_copy_is_not_staged(tmp_path: Path) -> None:
    source = tmp_path / "last.pt"
    source.write_bytes(os.urandom(64 * 1024 * 1024))
    stop = threading.Event()

    def keep_rewriting() -> None:
        while not stop.is_set():
            with source.open("r+b") as file:
                file.write(os.urandom(4096))

    writer = threading.Thread(target=keep_rewriting)
    writer.start()
    try:
        result = stage_file(source, tmp_path / "staging" / "2.pt")
    finally:
        stop.set()
        writer.join()
    assert result is None
    assert not (tmp_path / "staging" / "2.pt").exists()


def test_a_missing_file_is_reported_to_the_caller(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        stage_file(tmp_path / "gone.pt", tmp_path / "staging" / "3.pt")
