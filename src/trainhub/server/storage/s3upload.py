"""Sending a spooled file to a bucket: checksummed requests, never replacing an object.

A file below the multipart threshold goes in one PutObject that carries the SHA-256 the server
computed while receiving it, so the bucket stores exactly the bytes that were hashed (it answers
BadDigest otherwise). A larger one goes in parts, each read from disk when it is sent and carrying
its own SHA-256; a part that fails is retried by botocore's retry handler (5xx, throttling,
connection errors: AWS_MAX_ATTEMPTS, AWS_RETRY_MODE), and an upload that fails anyway is aborted,
so the object never appears half-written. The request that makes the object visible (PutObject,
or CompleteMultipartUpload) carries `If-None-Match: *`: the bucket refuses to replace an object
that is already there, and the caller decides what that means (see s3.py).
"""

import base64
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
# what S3 answers when `If-None-Match: *` finds an object, or races another conditional write
OBJECT_EXISTS_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


class ObjectExistsError(Exception):
    """The bucket refused to replace an object that is already there."""


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _is_object_exists(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in OBJECT_EXISTS_CODES or status == 412


class PartUploader:
    """Uploads files to one bucket with a boto3 client."""

    def __init__(
        self, client: Any, bucket: str, threshold_bytes: int, part_bytes: int, concurrency: int
    ) -> None:
        from botocore.exceptions import ClientError

        self._client, self._bucket = client, bucket
        self._threshold, self._part_bytes = threshold_bytes, part_bytes
        self._concurrency = concurrency
        self._client_error = ClientError

    def upload(self, path: Path, name: str, sha256: bytes) -> None:
        """Send the file at `path` as the object `name`; `sha256` is the whole file's digest.

        Raises ObjectExistsError when the object is there already, botocore's errors otherwise.
        """
        size = path.stat().st_size
        try:
            if size < self._threshold:
                self._put(path, name, sha256)
            else:
                self._put_in_parts(path, name, size)
        except self._client_error as exc:
            if _is_object_exists(exc):
                raise ObjectExistsError(name) from exc
            raise

    def _put(self, path: Path, name: str, sha256: bytes) -> None:
        self._client.put_object(
            Bucket=self._bucket,
            Key=name,
            Body=path.read_bytes(),
            ChecksumSHA256=_b64(sha256),
            IfNoneMatch="*",
        )

    def _put_in_parts(self, path: Path, name: str, size: int) -> None:
        started = self._client.create_multipart_upload(
            Bucket=self._bucket, Key=name, ChecksumAlgorithm="SHA256"
        )
        upload_id = started["UploadId"]
        count = -(-size // self._part_bytes)
        try:
            with ThreadPoolExecutor(self._concurrency, thread_name_prefix="s3-part") as pool:
                parts = list(
                    pool.map(
                        lambda n: self._send_part(path, name, upload_id, n), range(1, count + 1)
                    )
                )
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            # an abort that fails too leaves an unfinished upload: nothing a reader can see,
            # and the clean-up (services/gc.py) aborts it later
            with suppress(Exception):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=name, UploadId=upload_id
                )
            raise

    def _send_part(self, path: Path, name: str, upload_id: str, number: int) -> dict[str, Any]:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, self._part_bytes, (number - 1) * self._part_bytes)
        finally:
            os.close(fd)
        checksum = _b64(hashlib.sha256(data).digest())
        answer = self._client.upload_part(
            Bucket=self._bucket,
            Key=name,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumSHA256=checksum,
        )
        logger.debug("sent part %d of %s (%d bytes)", number, name, len(data))
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}
