"""What a test server keeps on disk: the files of its storage folder and of its data folder."""

from pathlib import Path

from trainhub.server.settings import Settings

DATABASE_FILES = ("trainhub.db", "trainhub.db-wal", "trainhub.db-shm", "secret_key")


def blob_root(settings: Settings) -> Path:
    """Return the storage folder of a server with local storage."""
    return settings.data_dir / "blobs"


def stored_files(settings: Settings) -> set[str]:
    """Return every file in the storage folder (tmp/ included), relative to it."""
    root = blob_root(settings)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def temp_files(settings: Settings) -> set[str]:
    """Return the upload temp files still lying in the storage folder's tmp/."""
    return {name for name in stored_files(settings) if name.startswith("tmp/")}


def files_under(folder: Path) -> set[str]:
    """Return every file below `folder` except the SQLite database and the secret."""
    return {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.name not in DATABASE_FILES
    }
