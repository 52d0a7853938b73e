"""Only the server's user can read what the hub keeps: data directory 0700, every file 0600.

A real `trainhub server` process (with users made beforehand by `trainhub users create`, as an
operator does) takes weights, a resumable upload left half done, a dataset and a cover, while a
plain upload is held open mid-body; then no file under the data directory is readable by group
or others, and no folder is enterable by them.
"""

import stat
import time
from pathlib import Path

import pytest

from tests.security.hubflow import run_flow, stalled_upload, temp_files
from tests.servers import start_server

pytestmark = pytest.mark.e2e


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_uploads_blobs_and_temp_files_are_private(tmp_path: Path) -> None:
    with start_server(tmp_path, users_by_cli=True) as hub:
        assert mode(hub.data_dir) == 0o700, oct(mode(hub.data_dir))
        flow = run_flow(hub)
        with stalled_upload(hub, flow.model_id):
            temps = temp_files(hub.data_dir)
            assert len(temps) == 1, (temps, hub.log())
            assert mode(temps[0]) == 0o600, oct(mode(temps[0]))
        # the dropped upload's temp file goes as the server notices that the client left
        deadline = time.monotonic() + 10
        while temp_files(hub.data_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert temp_files(hub.data_dir) == [], hub.log()
        files = [path for path in hub.data_dir.rglob("*") if path.is_file()]
        folders = [hub.data_dir, *(path for path in hub.data_dir.rglob("*") if path.is_dir())]
        names = {path.relative_to(hub.data_dir).as_posix() for path in files}
        assert {"trainhub.db", "trainhub.db-wal", "trainhub.db-shm", "secret_key"} <= names
        assert any(name.startswith("blobs/partial/") for name in names), names
        for kind in ("models", "datasets", "projects"):
            assert any(name.startswith(f"blobs/{kind}/") for name in names), (kind, names)
        readable = {path.name: oct(mode(path)) for path in files if mode(path) != 0o600}
        assert not readable, readable
        open_folders = {path.name: oct(mode(path)) for path in folders if mode(path) != 0o700}
        assert not open_folders, open_folders
