"""Streaming file transfer for the client: multipart bodies and byte ranges read from disk,
downloads written to disk and checked against their ETag. Memory stays flat whatever the size.
"""

import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from trainhub.client.errors import TrainhubError

CHUNK_BYTES = 256 * 1024
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
Progress = Callable[[int], None]


def redacted(url: str) -> str:
    """Return `url` fit for logs: a signed link's token (in its path or query) left out."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/.../{parts.path.rsplit('/', 1)[-1]}"


def file_sha256(path: Path | str) -> str:
    """Return the sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class MultipartFile:
    """A multipart/form-data body of text fields and one file part, streamed from disk."""

    def __init__(
        self,
        head: bytes,
        path: Path,
        size_bytes: int,
        tail: bytes,
        boundary: str,
        progress: Progress | None,
    ) -> None:
        self.head, self.path, self.size_bytes, self.tail = head, path, size_bytes, tail
        self.boundary, self.progress = boundary, progress

    @classmethod
    def create(
        cls,
        path: Path | str,
        fields: dict[str, str],
        part: str,
        sha256: str | None,
        progress: Progress | None,
    ) -> "MultipartFile":
        """Describe the upload of `path` as file part `part` with `fields` and its sha256."""
        source = Path(path)
        size_bytes = source.stat().st_size
        if size_bytes == 0:
            raise ValueError(f"{source} is empty (0 bytes); there is nothing to upload")
        digest = (sha256 or file_sha256(source)).strip().lower()
        if not SHA256_RE.match(digest):
            raise ValueError(f"sha256 {sha256!r} is not 64 hex digits")
        boundary = secrets.token_hex(16)
        head = b"".join(
            _part_header(boundary, f'name="{name}"') + value.encode() + b"\r\n"
            for name, value in {**fields, "sha256": digest}.items()
        )
        head += _part_header(
            boundary, f'name="{part}"; filename="{part}"', "application/octet-stream"
        )
        tail = f"\r\n--{boundary}--\r\n".encode()
        return cls(head, source, size_bytes, tail, boundary, progress)

    def headers(self) -> dict[str, str]:
        """Return the Content-Type and Content-Length of the body."""
        length = len(self.head) + self.size_bytes + len(self.tail)
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(length),
        }

    def stream(self) -> Generator[bytes, None, None]:
        """Yield the body; report file bytes once the network asks for the next chunk."""
        yield self.head
        with self.path.open("rb") as handle:
            left = self.size_bytes
            while left > 0:
                chunk = handle.read(min(CHUNK_BYTES, left))
                if not chunk:
                    raise OSError(
                        f"{self.path} shrank while it was being uploaded (expected "
                        f"{self.size_bytes} bytes); it is being rewritten, upload it once saved"
                    )
                yield chunk
                left -= len(chunk)
                if self.progress is not None:
                    self.progress(len(chunk))
        yield self.tail


def _part_header(boundary: str, disposition: str, content_type: str | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Disposition: form-data; {disposition}"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _etag_sha256(etag: str | None) -> str | None:
    """Return the sha256 a strong ETag carries, or None when it carries none."""
    if not etag or etag.startswith("W/"):
        return None
    value = etag.strip().strip('"').lower()
    return value if SHA256_RE.match(value) else None


def write_verified(response: httpx.Response, dest: Path, url: str) -> str:
    """Stream a 2xx body to a temporary file, check it against the ETag, rename it to `dest`."""
    digest = hashlib.sha256()
    fd, temporary = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in response.iter_bytes(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        expected = _etag_sha256(response.headers.get("etag"))
        if expected is not None and expected != digest.hexdigest():
            raise TrainhubError(
                f"download of {redacted(url)} does not match its ETag (sha256 "
                f"{expected[:12]}..., received {digest.hexdigest()[:12]}...); the file was "
                f"damaged in transit or changed on the hub; {dest} was left as it was, try again"
            )
        os.replace(temporary, dest)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def stream_file(path: Path, offset: int, progress: Progress | None) -> Generator[bytes, None, None]:
    """Yield a file's bytes from `offset` to its end, reporting each chunk once it is taken."""
    with path.open("rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk
            if progress is not None:
                progress(len(chunk))
