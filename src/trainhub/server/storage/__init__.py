"""Blob storage backends; `from_url` picks one from a storage URL."""

from pathlib import Path
from urllib.parse import unquote, urlsplit

from trainhub.server.storage.base import BlobWriter, Storage, StorageError, check_key
from trainhub.server.storage.local import LocalStorage

__all__ = ["BlobWriter", "LocalStorage", "Storage", "StorageError", "check_key", "from_url"]


def from_url(url: str) -> Storage:
    """Return the storage for `url` (`file:///abs/path`; S3 comes with the scale-out work)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStorage(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        raise ValueError("S3 storage is not available in this version; use a file:// storage URL")
    raise ValueError(f"unsupported storage URL {url!r}; use file:///absolute/folder")
