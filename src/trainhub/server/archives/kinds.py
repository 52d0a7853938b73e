"""Archive kinds: the kind a file name promises, and the kind its bytes really are."""

import gzip
import tarfile
import zipfile
from pathlib import Path

from trainhub.server.archives.errors import ArchiveError, damaged, quote
from trainhub.server.archives.zips import ZIP_LOCAL_MAGIC

KIND_LABELS = {"zip": "zip archive", "tar": "tar archive", "tar.gz": "gzip-compressed tar archive"}
KIND_SUFFIXES = {"zip": ".zip", "tar": ".tar", "tar.gz": ".tar.gz"}

_GZIP_MAGIC = b"\x1f\x8b"


def expected_kind(filename: str) -> str:
    lower = filename.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if lower.endswith(".tar"):
        return "tar"
    raise ArchiveError(
        f"{quote(filename)} is not a supported archive name; "
        "upload a .zip, .tar, .tar.gz or .tgz file."
    )


def sniff_kind(path: Path, filename: str) -> str | None:
    """Tell the real archive type from the content, in the order trainers try them."""
    with path.open("rb") as fh:
        head = fh.read(tarfile.BLOCKSIZE)
    looks_tar = _is_tar_header(head)
    if zipfile.is_zipfile(path):
        if looks_tar:
            # ultralytics tries zip first, so it would unpack only the zip hidden at the end
            raise ArchiveError(
                f"{quote(filename)} reads as both a tar and a zip archive (probably a .zip file "
                "stored last in it); take nested .zip files out of the dataset and upload again."
            )
        return "zip"
    if head.startswith(_GZIP_MAGIC):
        with gzip.open(path, "rb") as unzipped:
            if not _is_tar_header(unzipped.read(tarfile.BLOCKSIZE)):
                raise ArchiveError(
                    f"{quote(filename)} is gzip-compressed but holds no tar archive; "
                    "create it with `tar czf` and upload again."
                )
        return "tar.gz"
    if looks_tar:
        return "tar"
    if head.startswith(ZIP_LOCAL_MAGIC):
        raise ArchiveError(damaged(filename))  # a zip that lost its directory at the end
    return None


def _is_tar_header(block: bytes) -> bool:
    if block == bytes(tarfile.BLOCKSIZE):
        return True  # an empty tar is nothing but end-of-archive blocks
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True
