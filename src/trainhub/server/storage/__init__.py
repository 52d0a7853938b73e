"""Blob storage backends; `from_url` picks one from a storage URL."""

from pathlib import Path
from urllib.parse import unquote, urlsplit

from trainhub.server.storage.base import (
    BlobNotFoundError,
    BlobWriter,
    Leftover,
    Storage,
    StorageConfigError,
    StorageError,
    StoredBlob,
    check_key,
    is_key,
)
from trainhub.server.storage.local import LocalStorage

__all__ = [
    "BlobNotFoundError",
    "BlobWriter",
    "Leftover",
    "LocalStorage",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "StoredBlob",
    "check_key",
    "from_url",
    "is_key",
]


def from_url(
    url: str, spool_dir: Path, public_endpoint_url: str | None = None, *, sweep: bool = True
) -> Storage:
    """Return the storage for `url`: `file:///abs/path` or `s3://bucket/prefix`.

    A bucket receives uploads through temp files in `spool_dir` (a local folder keeps its own
    temp files next to its blobs, so that publishing is a link); `public_endpoint_url` is the
    S3 endpoint that clients reach, for presigned downloads. `sweep` removes the temp files a
    killed server left: right for a server that starts, wrong beside a running one.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStorage(Path(unquote(parts.path)), sweep=sweep)
    if parts.scheme == "s3":
        from trainhub.server.storage.s3 import S3Storage  # boto3 comes with the s3 extra

        return S3Storage.from_url(url, spool_dir, public_endpoint_url, sweep=sweep)
    raise ValueError(
        f"unsupported storage URL {url!r}; use file:///absolute/folder or s3://bucket/prefix"
    )
