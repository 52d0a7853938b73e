"""Streaming multipart/form-data: file parts go straight to storage, hashed on the way.

Nothing is held in memory but the small text fields; a file part is written to a BlobWriter as it
arrives, so a 2 GiB checkpoint costs the server a few chunks of memory. On any failure (too large,
truncated, stalled, unexpected part) every blob started is aborted: no partial or orphaned file.
A body may hold at most `max_form_parts` parts and one file part (each open file part holds a
file descriptor), and must arrive within the server's body deadline.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from trainhub.server.bodies import in_batches, iter_body
from trainhub.server.errors import (
    BadRequestError,
    HubError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from trainhub.server.state import request_hub
from trainhub.server.storage import BlobWriter, Storage

MAX_FIELD_BYTES = 64 * 1024


@dataclass
class UploadedFile:
    """A file part written to storage but not yet published."""

    field: str
    filename: str
    writer: BlobWriter


@dataclass
class MultipartForm:
    """The text fields and file parts of a multipart body."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    def abort(self) -> None:
        """Throw away every file part that was not published."""
        for upload in self.files:
            upload.writer.abort()


@dataclass
class _Part:
    headers: dict[str, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    text: bytearray = field(default_factory=bytearray)
    upload: UploadedFile | None = None


class _Collector:
    """Parser callbacks that route each part to a field or to storage."""

    def __init__(
        self,
        storage: Storage,
        accept_file: Callable[[str, str], bool],
        max_parts: int,
        max_files: int,
    ) -> None:
        self.storage = storage
        self.accept_file = accept_file
        self.max_parts = max_parts
        self.max_files = max_files
        self.parts = 0
        self.form = MultipartForm()
        self.part = _Part()
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.complete = False

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise BadRequestError(
                f"the form has more than {self.max_parts} parts; send only the fields the "
                "upload takes and one file"
            )
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        name = self.header_field.decode("latin-1").lower()
        # kept as bytes: requests sends UTF-8 file names raw, which a str parse would choke on
        self.part.headers[name] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(
            self.part.headers.get("content-disposition", b"")
        )
        if disposition != b"form-data" or b"name" not in options:
            raise BadRequestError(
                "every multipart part needs Content-Disposition: form-data; name=..."
            )
        self.part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            self.part.filename = options[b"filename"].decode("utf-8", "replace")
            self._start_file()

    def _start_file(self) -> None:
        filename = self.part.filename or ""
        if not self.accept_file(self.part.name, filename):
            raise BadRequestError(f"unexpected file part {self.part.name[:80]!r} in this upload")
        if len(self.form.files) >= self.max_files:
            raise ValidationError("send exactly one file part in this upload")
        upload = UploadedFile(self.part.name, filename, self.storage.create_writer())
        self.form.files.append(upload)
        self.part.upload = upload

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.upload is not None:
            self.part.upload.writer.write(data[start:end])
            return
        self.part.text += data[start:end]
        if len(self.part.text) > MAX_FIELD_BYTES:
            raise BadRequestError(f"form field {self.part.name[:80]!r} is too long")

    def on_part_end(self) -> None:
        if self.part.upload is None:
            self.form.fields[self.part.name] = self.part.text.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.complete = True

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            name: getattr(self, name)
            for name in (
                "on_part_begin",
                "on_header_field",
                "on_header_value",
                "on_header_end",
                "on_headers_finished",
                "on_part_data",
                "on_part_end",
                "on_end",
            )
        }


def _boundary(request: Request) -> bytes:
    media, options = parse_options_header(request.headers.get("content-type", ""))
    if media != b"multipart/form-data" or not options.get(b"boundary"):
        raise UnsupportedMediaTypeError("send this upload as multipart/form-data")
    return options[b"boundary"]


def _feed(parser: MultipartParser, batch: list[bytes]) -> None:
    for chunk in batch:  # the file parts' writers hash and write what the parser hands them
        parser.write(chunk)


async def read_multipart(
    request: Request,
    storage: Storage,
    accept_file: Callable[[str, str], bool],
    max_bytes: int,
    *,
    max_files: int = 1,
) -> MultipartForm:
    """Read a multipart body; the file parts `accept_file(field, filename)` allows go to storage.

    The server's settings give the idle timeout, the body deadline and the most parts allowed.
    """
    settings = request_hub(request).settings
    collector = _Collector(storage, accept_file, settings.max_form_parts, max_files)
    body = iter_body(request, max_bytes, settings.body_idle_timeout_s, settings.body_deadline_s)
    try:
        parser = MultipartParser(_boundary(request), collector.callbacks())  # type: ignore[arg-type]
        async for batch in in_batches(body):
            await run_in_threadpool(_feed, parser, batch)
        parser.finalize()
        if not collector.complete:
            raise BadRequestError("the multipart body was cut off before its end; send it again")
    except FormParserError as exc:
        collector.form.abort()
        raise BadRequestError(f"malformed multipart body: {exc}") from exc
    except (HubError, Exception):
        collector.form.abort()
        raise
    return collector.form
