"""Resumable (tus) uploads in a bucket: one S3 multipart upload each, which any replica continues.

Under the storage prefix, upload `ID` owns the names `partial/ID` (the multipart upload's object)
and `partial/ID.tail-*` (beside it, not under it: SeaweedFS and MinIO keep objects as files, and
`partial/ID/x` would make `partial/ID` a folder that no object can take). A request appends
bytes in parts of PART_BYTES (S3's smallest part but the last), each carrying its own SHA-256;
the bytes it leaves below a part (the tail) wait in a small object `partial/ID.tail-TOKEN` until
the next request, on any replica, reads them back and sends them at the head of its first part.
The database row holds the state: the multipart upload's id, the parts sent (number, size,
checksum, ETag) and the tail object. Part numbers come from a database counter, so two requests
that race never overwrite each other's part; only the one whose compare-and-set on the offset
succeeds gets its parts recorded, and S3 drops the parts a completion does not list.

Completion sends CompleteMultipartUpload with `If-None-Match: *` to `partial/ID`, never to a
published key: the key of a blob names its hash, and a hash cannot be carried from one replica
to the next mid-upload. The object is read back once, hashed into a spool file, and published
like any upload (s3upload.py). docs/decisions/0022-resumable-uploads-on-any-replica.md says why.
"""

import base64
import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from trainhub.server.storage.base import (
    BlobWriter,
    Leftover,
    PartialConflictError,
    PartialLostError,
    Progress,
    StorageError,
)
from trainhub.server.storage.spool import CHUNK_BYTES, SpoolWriter

PART_BYTES = 5 * 1024**2
MAX_PARTS = 10_000  # S3's limit: with 5 MiB parts, 48 GiB (far above max_upload_bytes)
_MISSING = {"404", "NoSuchKey", "NotFound"}


def _b64sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Partials:
    """The resumable uploads of one bucket and prefix."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        object_key: Callable[[str], str],
        errors: tuple[type[Exception], ...],
        failure: Callable[[str, str, Exception], StorageError],
        create_writer: Callable[[], SpoolWriter],
    ) -> None:
        self.client, self.bucket = client, bucket
        self.object_key, self.errors, self.failure = object_key, errors, failure
        self._create_writer = create_writer

    def name(self, upload_id: str) -> str:
        """Return the object the multipart upload of `upload_id` completes into."""
        return self.object_key(f"partial/{upload_id}")

    def start(self, upload_id: str) -> dict[str, Any]:
        """Start the multipart upload; return the state the row keeps."""
        name = self.name(upload_id)
        try:
            started = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=name, ChecksumAlgorithm="SHA256"
            )
        except self.errors as exc:
            raise self.failure("start a multipart upload of", name, exc) from exc
        return {"multipart": str(started["UploadId"]), "parts": [], "tail": None, "tail_size": 0}

    def open(
        self,
        upload_id: str,
        state: dict[str, Any],
        offset: int,
        length: int,
        reserve_part: Callable[[], int],
    ) -> "S3Appender":
        """Open the upload at `offset` (which `state` must reach) to append to it."""
        if "multipart" not in state:  # an upload a version before 0009_uploads_anywhere spooled
            raise PartialLostError(f"upload {upload_id} has no multipart upload")
        return S3Appender(self, upload_id, state, offset, length, reserve_part)

    def read_tail(self, tail: str) -> bytes:
        """Return the bytes of a tail object (PartialConflictError if it went meanwhile)."""
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=tail)["Body"].read())
        except self.errors as exc:
            if _code(exc) in _MISSING:
                raise PartialConflictError("another request appended to this upload") from exc
            raise self.failure("read", tail, exc) from exc

    def finish(self, upload_id: str, state: dict[str, Any], length: int) -> BlobWriter:
        """Complete the multipart upload and read it back once into a hashed spool file."""
        name = self.name(upload_id)
        complete = state.get("completed") or sum(part[1] for part in state["parts"]) == length
        if state.get("tail") or not complete:
            raise PartialConflictError(f"upload {upload_id} does not hold its {length} bytes yet")
        parts = [
            {"PartNumber": number, "ETag": etag, "ChecksumSHA256": checksum}
            for number, _, checksum, etag in state["parts"]
        ]
        if state.get("completed"):  # by a request whose replica died before publishing it
            return self._read_back(name, length)
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=name,
                UploadId=state["multipart"],
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except self.errors as exc:
            # completed already, by a request that was cut off before it published the blob
            if _code(exc) not in ("NoSuchUpload", "PreconditionFailed", "412"):
                raise self.failure("complete the multipart upload of", name, exc) from exc
        return self._read_back(name, length)

    def _read_back(self, name: str, length: int) -> BlobWriter:
        writer = self._create_writer()
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK_BYTES):
                    writer.write(chunk)
            finally:
                body.close()
        except self.errors as exc:
            writer.abort()
            raise self.failure("read", name, exc) from exc
        except BaseException:
            writer.abort()
            raise
        if writer.size != length:
            writer.abort()
            raise StorageError(f"s3://{self.bucket}/{name} holds {writer.size} bytes, not {length}")
        return writer

    def discard(self, upload_id: str) -> None:
        """Abort the multipart upload and delete the completed object and tails (idempotent)."""
        name = self.name(upload_id)
        for item in self._multipart_uploads(name):
            if item["Key"] == name:
                self.abort(name, str(item["UploadId"]))
        for key, _ in self._objects(name):
            if key == name or key.startswith(name + ".tail-"):
                self.delete(key)

    def leftovers(self) -> list[Leftover]:
        """Return every multipart upload and object of resumable uploads, with its upload id."""
        start = self.object_key("partial/x")[: -len("x")]
        found = []
        for item in self._multipart_uploads(start):
            name = str(item["Key"])
            upload_id = name[len(start) :].split(".")[0]
            what = f"multipart upload of resumable upload {upload_id} (s3://{self.bucket}/{name})"
            remove = partial(self.abort, name, str(item["UploadId"]))
            found.append(Leftover(what, item["Initiated"], remove, upload_id=upload_id))
        for name, modified in self._objects(start):
            upload_id = name[len(start) :].split(".")[0]
            what = f"object of resumable upload {upload_id} (s3://{self.bucket}/{name})"
            found.append(Leftover(what, modified, partial(self.delete, name), upload_id=upload_id))
        return found

    def completed_size(self, upload_id: str) -> int | None:
        """Return the size of the completed object of `upload_id` (None: not completed)."""
        name = self.name(upload_id)
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])
        except self.errors as exc:
            if _code(exc) in _MISSING:
                return None
            raise self.failure("find", name, exc) from exc

    def _multipart_uploads(self, prefix: str) -> list[dict[str, Any]]:
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            return [item for page in pages for item in page.get("Uploads", [])]
        except self.errors as exc:
            raise self.failure("list the multipart uploads of", prefix, exc) from exc

    def _objects(self, prefix: str) -> list[tuple[str, datetime]]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            return [
                (str(item["Key"]), item["LastModified"])
                for page in pages
                for item in page.get("Contents", [])
            ]
        except self.errors as exc:
            raise self.failure("list", prefix, exc) from exc

    def abort(self, name: str, multipart: str) -> None:
        """Abort one multipart upload; one already gone is not an error."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=multipart)
        except self.errors as exc:
            if _code(exc) not in ("NoSuchUpload", "404"):
                raise self.failure("abort the multipart upload of", name, exc) from exc

    def delete(self, name: str) -> None:
        """Delete one object; a missing one is not an error."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=name)
        except self.errors as exc:
            if _code(exc) not in _MISSING:
                raise self.failure("delete", name, exc) from exc


class S3Appender:
    """One request's bytes going into a multipart upload, a part at a time."""

    def __init__(
        self,
        partials: S3Partials,
        upload_id: str,
        state: dict[str, Any],
        offset: int,
        length: int,
        reserve_part: Callable[[], int],
    ) -> None:
        self._s3, self._upload_id = partials, upload_id
        self._multipart = str(state["multipart"])
        self._parts: list[list[Any]] = [list(part) for part in state["parts"]]
        self._tail: str | None = state.get("tail")
        self._tail_size = int(state.get("tail_size", 0))
        if self._sent() + self._tail_size != offset:
            raise PartialConflictError("another request appended to this upload")
        self._length, self._reserve = length, reserve_part
        self._buffer = bytearray(partials.read_tail(self._tail) if self._tail else b"")
        self._superseded: list[str] = []  # tails whose bytes went into a part or a newer tail
        self._completed = False  # a request before this one completed the upload, then died

    def _sent(self) -> int:
        return sum(int(part[1]) for part in self._parts)

    def _progress(self) -> Progress:
        state = {
            "multipart": self._multipart,
            "parts": self._parts,
            "tail": self._tail,
            "tail_size": self._tail_size,
        }
        if self._completed:
            return Progress(self._length, {**state, "tail": None, "completed": True})
        return Progress(self._sent() + self._tail_size, state)

    def write(self, chunk: bytes) -> Progress | None:
        """Buffer `chunk`; send every full part; return the progress when a part was sent."""
        if self._completed:  # the bytes are in the completed object already
            return None
        self._buffer += chunk
        sent = False
        while len(self._buffer) >= PART_BYTES and not self._completed:
            self._send(bytes(self._buffer[:PART_BYTES]))
            del self._buffer[:PART_BYTES]
            sent = True
        return self._progress() if sent else None

    def _send(self, data: bytes) -> None:
        number = self._reserve()
        name = self._s3.name(self._upload_id)
        if number > MAX_PARTS:
            raise StorageError(f"upload {self._upload_id} needs more than {MAX_PARTS} parts")
        checksum = _b64sha256(data)
        try:
            answer = self._s3.client.upload_part(
                Bucket=self._s3.bucket,
                Key=name,
                UploadId=self._multipart,
                PartNumber=number,
                Body=data,
                ChecksumSHA256=checksum,
            )
        except self._s3.errors as exc:
            if _code(exc) != "NoSuchUpload":
                raise self._s3.failure("upload a part of", name, exc) from exc
            if self._s3.completed_size(self._upload_id) != self._length:
                raise PartialConflictError("this upload was removed") from exc
            # completed by a request that died before it published: its object is whole, and
            # publishing reads it back and checks its sha256
            self._completed = True
            self._buffer.clear()
            return
        self._parts.append([number, len(data), checksum, str(answer["ETag"])])
        if self._tail is not None:  # its bytes led this part
            self._superseded.append(self._tail)
            self._tail, self._tail_size = None, 0

    def keep(self) -> Progress:
        """Send the last part, or store what is below a part as the new tail object."""
        if self._completed or len(self._buffer) == self._tail_size:  # nothing new since the tail
            return self._progress()
        if self._sent() + len(self._buffer) == self._length:
            self._send(bytes(self._buffer))
        else:
            name = f"{self._s3.name(self._upload_id)}.tail-{secrets.token_hex(8)}"
            try:
                self._s3.client.put_object(
                    Bucket=self._s3.bucket,
                    Key=name,
                    Body=bytes(self._buffer),
                    ChecksumSHA256=_b64sha256(bytes(self._buffer)),
                    IfNoneMatch="*",
                )
            except self._s3.errors as exc:
                raise self._s3.failure("store the tail of", name, exc) from exc
            if self._tail is not None:
                self._superseded.append(self._tail)
            self._tail, self._tail_size = name, len(self._buffer)
            return self._progress()
        self._buffer.clear()
        return self._progress()

    def drop(self) -> None:
        """Forget this request's bytes: its parts are never listed, so S3 drops them."""
        self._buffer.clear()

    def recorded(self) -> None:
        """Progress is recorded: delete the tails it superseded (a failure leaves them to gc)."""
        for name in self._superseded:
            try:
                self._s3.delete(name)
            except StorageError:
                continue
        self._superseded.clear()

    def close(self) -> None:
        """Let the buffer go."""
        self._buffer = bytearray()
