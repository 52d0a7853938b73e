"""Hand-built multipart/form-data bodies, for the part shapes httpx will not produce.

httpx escapes or rewrites some part names and file names and always adds a Content-Type per
file part; hostile-input tests need the exact bytes a client could send, and hub-sdk's shape
(no per-part Content-Type) for the dataset upload.
"""

import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """One part: a text field when `filename` is None, else a file part."""

    name: str
    content: bytes
    filename: str | None = None


def multipart_body(parts: list[Part]) -> tuple[bytes, dict[str, str]]:
    """Return the body and the Content-Type header of a multipart/form-data request."""
    boundary = secrets.token_hex(16)
    chunks = []
    for part in parts:
        disposition = f'form-data; name="{part.name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        chunks.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + part.content
        )
    body = b"\r\n".join(chunks) + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def file_part(filename: str, content: bytes, field: str | None = None) -> Part:
    """Return a file part in hub-sdk's dataset shape: the field is named after the file."""
    return Part(field if field is not None else filename, content, filename)
