"""Inspect uploaded dataset archives (zip, tar, tar.gz) without extracting them.

Hostile or unusable ones are refused with an ArchiveError whose message says what to fix.
Here: the entry point, inspect_archive. Beside it: kinds.py (what the bytes really are),
zips.py and tars.py (one format each), catalog.py (names and totals of either format),
names.py, layout.py, dataset_yaml.py and splits.py (what a dataset must look like), limits.py,
errors.py.
"""

import logging
import lzma
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

from trainhub.server.archives.catalog import ArchiveReport, Catalog
from trainhub.server.archives.errors import ArchiveError, damaged, quote
from trainhub.server.archives.kinds import KIND_LABELS, KIND_SUFFIXES, expected_kind, sniff_kind
from trainhub.server.archives.limits import ArchiveLimits
from trainhub.server.archives.names import ARCHIVE_SUFFIXES, is_archive_name
from trainhub.server.archives.tars import inspect_tar
from trainhub.server.archives.zips import inspect_zip

__all__ = [
    "ARCHIVE_SUFFIXES",
    "ArchiveError",
    "ArchiveLimits",
    "ArchiveReport",
    "inspect_archive",
    "is_archive_name",
]

logger = logging.getLogger(__name__)

# What the zip, tar, gzip, bz2 and lzma readers raise on bytes that are not what they claim.
_DAMAGE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    struct.error,
    ValueError,
    OverflowError,
)


def inspect_archive(
    path: Path, filename: str, limits: ArchiveLimits = ArchiveLimits()
) -> ArchiveReport:
    """Check the archive at `path` without extracting it; raise ArchiveError if it is refused.

    `filename` is the name the user gave the file: it sets the expected type and names the
    archive in messages.
    """
    archive_size = path.stat().st_size  # outside the try: a missing file is our bug, not theirs
    try:
        report = _inspect(path, filename, limits, archive_size)
    except ArchiveError as exc:
        logger.info("refused archive %r: %s", filename, exc)
        raise
    except _DAMAGE_ERRORS as exc:
        logger.info("refused damaged archive %r: %r", filename, exc)
        raise ArchiveError(damaged(filename)) from exc
    logger.debug("accepted archive %r: %s", filename, report)
    return report


def _inspect(path: Path, filename: str, limits: ArchiveLimits, size: int) -> ArchiveReport:
    expected = expected_kind(filename)
    actual = sniff_kind(path, filename)
    if actual is None:
        raise ArchiveError(
            f"{quote(filename)} is not a zip or tar archive; "
            "upload your dataset as a .zip, .tar or .tar.gz file."
        )
    if actual != expected:
        raise ArchiveError(
            f"{quote(filename)} is named like a {KIND_LABELS[expected]} but is a "
            f"{KIND_LABELS[actual]}; rename it to end in {KIND_SUFFIXES[actual]} and upload "
            "again."
        )
    catalog = Catalog(filename, limits, size)
    if actual == "zip":
        return inspect_zip(path, catalog)
    return inspect_tar(path, catalog, gzipped=actual == "tar.gz")
