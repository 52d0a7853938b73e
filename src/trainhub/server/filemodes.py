"""File modes: only the user the server runs as may read the data directory and what it holds.

The database holds key hashes and every user's records; blobs, upload temp files and partial
uploads hold users' weights and datasets. `trainhub server` sets the umask to 077, so everything
it creates is 0600 (folders 0700); the places that create files also ask for these modes
themselves, and the data directory and SQLite files made earlier (by `trainhub users create`,
or by an older version) are set to them at start-up (docs/security.md §2.16).
"""

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)
PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def restrict_umask() -> None:
    """Make every file this process creates from now on private (umask 077)."""
    os.umask(PRIVATE_UMASK)


def make_private_dirs(path: Path) -> None:
    """Create `path` and its missing parents as 0700 folders; existing ones keep their mode."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)


def make_private_dir(path: Path) -> None:
    """Create the folder `path` if missing (parents too), and make it 0700 if it was not.

    A folder this user may write to but not chmod (another user's) stays as it is, with a warning.
    """
    make_private_dirs(path)
    if path.stat().st_mode & 0o777 == PRIVATE_DIR_MODE:
        return
    try:
        path.chmod(PRIVATE_DIR_MODE)
    except PermissionError as exc:
        logger.warning("cannot make %s private (mode 0700): %s", path, exc.strerror)


def create_private_file(path: Path) -> None:
    """Create the empty file `path` as 0600 unless it exists; make it 0600 if it does."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    if path.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
        path.chmod(PRIVATE_FILE_MODE)
