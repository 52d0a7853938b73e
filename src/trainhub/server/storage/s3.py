"""Blobs in an S3-compatible bucket (AWS S3, SeaweedFS, Cloudflare R2, Ceph, MinIO, ...).

`s3://BUCKET/PREFIX[?endpoint_url=URL]` keeps each blob as the object `PREFIX/KEY`. Endpoint,
credentials and region come from the standard AWS environment and config files, as for any
boto3 program (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
AWS_PROFILE, ...), and AWS_REGION, which botocore does not read, is read here, ahead of the
others (`_boto3_session`); `endpoint_url` in the storage URL wins over AWS_ENDPOINT_URL.

An upload is written and hashed into a temp file in `<data_dir>/spool/tmp`, and publishing sends
that file (s3upload.py): one PutObject below MULTIPART_THRESHOLD_BYTES, else a multipart upload
whose parts are read from disk as they are sent. Every request carries the SHA-256 of its bytes,
so the bucket refuses bytes damaged on the way, and the completing request carries
`If-None-Match: *`, so a published object is never replaced (keys name the content's hash: the
object already there is the same blob). S3 shows an object only once its upload is complete, so
publication is atomic; a failed multipart upload is aborted, and one a killed server left behind
is aborted by the clean-up (services/gc.py). Resumable (tus) uploads are multipart uploads
of their own under `partial/` that any replica continues (s3partial.py). boto3 is an extra
(`trainhub[server,s3]`): it is imported here, when a bucket is opened, never by the rest of the
server.
"""

import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from trainhub.server.filemodes import make_private_dirs
from trainhub.server.storage.base import (
    BlobNotFoundError,
    BlobWriter,
    Leftover,
    StorageConfigError,
    StorageError,
    StoredBlob,
    check_key,
    is_server_key,
)
from trainhub.server.storage.s3partial import S3Appender, S3Partials
from trainhub.server.storage.s3upload import ObjectExistsError, PartUploader
from trainhub.server.storage.spool import (
    CHUNK_BYTES,
    SpoolWriter,
    check_writable,
    sweep_folder,
    sweep_temp_files,
    temp_leftovers,
)

MULTIPART_THRESHOLD_BYTES = 16 * 1024**2
MULTIPART_CHUNK_BYTES = 8 * 1024**2
MAX_CONCURRENCY = 4  # parts of one upload in flight at once
INSTALL_HINT = 'S3 storage needs boto3: pip install "trainhub[server,s3]"'
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
_CREDENTIALS_HINT = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
# answers that will not change by waiting: the configuration is wrong
_CONFIG_HINTS = {
    "NoSuchBucket": "create the bucket, or name an existing one in the storage URL",
    "InvalidAccessKeyId": _CREDENTIALS_HINT,
    "SignatureDoesNotMatch": _CREDENTIALS_HINT,
    "InvalidToken": _CREDENTIALS_HINT,
    "ExpiredToken": _CREDENTIALS_HINT,
    "AccessDenied": "give these credentials s3:PutObject and s3:DeleteObject on the prefix",
}
_CREDENTIAL_ERRORS = {"NoCredentialsError", "PartialCredentialsError"}


def parse_url(url: str) -> tuple[str, str, str | None]:
    """Return (bucket, prefix, endpoint_url) of `s3://BUCKET/PREFIX[?endpoint_url=URL]`."""
    parts = urlsplit(url)
    if "@" in parts.netloc:  # the URL is not echoed: it holds a secret
        raise ValueError(
            "put S3 credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "not in the storage URL"
        )
    if not _BUCKET_RE.match(parts.netloc):
        raise ValueError(f"storage URL {url!r} does not name a bucket: use s3://BUCKET/PREFIX")
    prefix = parts.path.strip("/")
    if prefix and (not _PREFIX_RE.match(prefix) or ".." in prefix.split("/")):
        raise ValueError(
            f"storage URL prefix {prefix!r} may hold only letters, digits, '.', '_', '-' and '/'"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"endpoint_url"})
    if unknown:
        raise ValueError(f"storage URL parameters {unknown} are not understood; use endpoint_url")
    endpoint = query["endpoint_url"][-1] if "endpoint_url" in query else None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError("endpoint_url in the storage URL must start with http:// or https://")
    return parts.netloc, prefix, endpoint


def _client_errors() -> tuple[type[Exception], ...]:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (Boto3Error, BotoCoreError, ClientError)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _reason(exc: Exception) -> str:
    """Return what went wrong, in words an operator can act on (never a credential)."""
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return f"{exc}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
    response = getattr(exc, "response", None)
    if response and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code', '?')}: {error.get('Message') or 'no message'}"
    return str(exc) or type(exc).__name__


def _boto3_session() -> Any:
    """A new boto3 session whose loader of botocore's data files is the process's one.

    A session parses the S3 service model and its endpoint rules again the first time it makes
    a client: about 75 ms of CPU, for each S3Storage (docs/performance.md, "The suite on the
    Intel VM, again"). The shared loader keeps the files it read and where it looks for them;
    credentials, region and settings stay each session's own, read from the environment and
    the AWS config files as a new session reads them.

    `AWS_REGION` names the region too, ahead of `AWS_DEFAULT_REGION` and a profile's region, as
    it does for the AWS CLI and the other SDKs; botocore itself reads only the other two
    (docs/settings.md).
    """
    import boto3
    from botocore.loaders import create_loader
    from botocore.session import get_session

    with _LOADERS_LOCK:
        session = get_session()
        path = session.get_config_variable("data_path")
        if path not in _LOADERS:
            _LOADERS[path] = create_loader(path)
        loader = _LOADERS[path]
        session.register_component("data_loader", loader)
        if os.environ.get("AWS_REGION"):
            session.set_config_variable("region", os.environ["AWS_REGION"])
        made = boto3.session.Session(botocore_session=session)
        # each boto3 session appends its data folder to the loader's paths: once is enough
        loader.search_paths[:] = dict.fromkeys(loader.search_paths)
    return made


_LOADERS: dict[str | None, Any] = {}  # botocore's loaders, by data path (AWS_DATA_PATH)
_LOADERS_LOCK = threading.Lock()


def _shown_endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}".rstrip("/")


class S3BlobWriter(SpoolWriter):
    """A spooled upload, sent to the bucket when published; the spool file goes either way."""

    # publish reads the spool file back at once: its pages stay in memory for that read, and a
    # spool file needs no durability (a crash sweeps it)
    hand_to_disk = False

    def __init__(
        self,
        folder: Path,
        upload: Callable[[Path, str, bytes], None],
    ) -> None:
        super().__init__(folder)
        self._upload = upload

    def publish(self, key: str) -> None:
        """Upload the blob as `key`; the object appears only when complete."""
        try:
            self._file.close()
            self._upload(self._path, key, self.digest())
        except OSError as exc:
            raise StorageError(f"cannot publish to storage: {exc.strerror or exc}") from exc
        finally:
            self.abort()


class S3Storage:
    """Storage in a bucket, under a prefix; uploads are spooled in `spool_dir` first."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        spool_dir: Path,
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        multipart_threshold_bytes: int = MULTIPART_THRESHOLD_BYTES,
        multipart_chunk_bytes: int = MULTIPART_CHUNK_BYTES,
        sweep: bool = True,
    ) -> None:
        try:
            import boto3  # noqa: F401 - here for the hint below; `_boto3_session` uses it
            from botocore.config import Config
        except ImportError as exc:
            raise ValueError(INSTALL_HINT) from exc
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._errors = _client_errors()
        config = Config(connect_timeout=10, read_timeout=60, max_pool_connections=32)
        try:
            session = _boto3_session()
            self._client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)
            # signs download URLs for the endpoint clients reach; it never sends a request
            self._signer: Any = session.client(
                "s3",
                endpoint_url=public_endpoint_url or endpoint_url,
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            )
        except self._errors as exc:
            raise ValueError(f"cannot set up the S3 client: {_reason(exc)}") from exc
        self._parts = PartUploader(
            self._client, bucket, multipart_threshold_bytes, multipart_chunk_bytes, MAX_CONCURRENCY
        )
        self._temp_dir = spool_dir / "tmp"
        make_private_dirs(self._temp_dir)
        if sweep:  # a server starting; not `trainhub gc` beside a running one
            sweep_temp_files(self._temp_dir)
            sweep_folder(spool_dir / "partial")  # tus files of versions before 0009: unused
        self._partials = S3Partials(
            self._client, bucket, self.object_key, self._errors, self._failure, self.create_writer
        )
        self._probe = f"healthz/probe-{secrets.token_hex(8)}"

    @classmethod
    def from_url(
        cls,
        url: str,
        spool_dir: Path,
        public_endpoint_url: str | None = None,
        *,
        sweep: bool = True,
    ) -> "S3Storage":
        """Return the storage `s3://BUCKET/PREFIX[?endpoint_url=URL]` names.

        `public_endpoint_url` is the S3 endpoint clients reach, for presigned download URLs.
        """
        bucket, prefix, endpoint_url = parse_url(url)
        return cls(
            bucket,
            prefix,
            spool_dir,
            endpoint_url=endpoint_url,
            public_endpoint_url=public_endpoint_url,
            sweep=sweep,
        )

    def object_key(self, key: str) -> str:
        """Return the name in the bucket of the blob `key` (checked, under the prefix)."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _failure(self, action: str, name: str, exc: Exception) -> StorageError:
        kind = BlobNotFoundError if _error_code(exc) in _MISSING_CODES else StorageError
        return kind(f"cannot {action} s3://{self.bucket}/{name}: {_reason(exc)}")

    def _upload(self, path: Path, key: str, sha256: bytes) -> None:
        name = self.object_key(key)
        try:
            self._parts.upload(path, name, sha256)
        except ObjectExistsError:
            self._check_same(name, path.stat().st_size)
        except self._errors as exc:
            raise self._failure("upload to", name, exc) from exc

    def _check_same(self, name: str, size: int) -> None:
        """Accept an object that was there already: its key names the content's hash."""
        try:
            found = int(self._client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])
        except self._errors as exc:
            raise self._failure("find", name, exc) from exc
        if found != size:
            raise StorageError(
                f"s3://{self.bucket}/{name} already holds {found} bytes, not the {size} "
                "uploaded; it was not replaced (remove that object if it is damaged)"
            )

    def create_writer(self) -> S3BlobWriter:
        """Start a new blob (a temp file in the spool folder)."""
        return S3BlobWriter(self._temp_dir, self._upload)

    def start_partial(self, upload_id: str) -> dict[str, Any]:
        """Start the multipart upload that collects a resumable upload (s3partial.py)."""
        return self._partials.start(upload_id)

    def append_partial(
        self,
        upload_id: str,
        state: dict[str, Any],
        offset: int,
        length: int,
        reserve_part: Callable[[], int],
    ) -> S3Appender:
        """Open a resumable upload at its recorded offset, to send parts to it."""
        return self._partials.open(upload_id, state, offset, length, reserve_part)

    def finish_partial(self, upload_id: str, state: dict[str, Any], length: int) -> BlobWriter:
        """Complete a resumable upload and return it read back into a hashed spool file."""
        return self._partials.finish(upload_id, state, length)

    def discard_partial(self, upload_id: str) -> None:
        """Abort a resumable upload's multipart upload and delete its objects."""
        self._partials.discard(upload_id)

    def partials(self) -> list[Leftover]:
        """Return the multipart uploads and objects of resumable uploads."""
        return self._partials.leftovers()

    def iter_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Return the bytes start..end (inclusive) of `key` in chunks (one ranged GetObject)."""
        name = self.object_key(key)
        try:
            answer = self._client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes={start}-{end}"
            )
        except self._errors as exc:
            raise self._failure("read", name, exc) from exc
        return self._stream(answer["Body"], name)

    def _stream(self, body: Any, name: str) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        except self._errors as exc:
            raise self._failure("read", name, exc) from exc
        finally:
            body.close()

    def size(self, key: str) -> int:
        """Return the size of `key` in bytes."""
        name = self.object_key(key)
        try:
            return int(self._client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])
        except self._errors as exc:
            raise self._failure("find", name, exc) from exc

    def delete(self, key: str) -> None:
        """Remove `key`; a missing object is not an error."""
        name = self.object_key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except self._errors as exc:
            if _error_code(exc) not in _MISSING_CODES:
                raise self._failure("delete", name, exc) from exc

    def iter_blobs(self) -> Iterator[StoredBlob]:
        """Return every object under the prefix whose name is a storage key."""
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = str(item["Key"])[len(start) :]
                    if is_server_key(key):  # never what else shares the bucket
                        yield StoredBlob(key, int(item["Size"]), item["LastModified"])
        except self._errors as exc:
            raise self._failure("list", start, exc) from exc

    def leftovers(self) -> list[Leftover]:
        """Return the spool's temp files and the unfinished multipart uploads under the prefix."""
        found = temp_leftovers(self._temp_dir)
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=start
            )
            uploads = [item for page in pages for item in page.get("Uploads", [])]
        except self._errors as exc:
            raise self._failure("list the multipart uploads of", start, exc) from exc
        for item in uploads:
            name, upload_id = str(item["Key"]), str(item["UploadId"])
            if not is_server_key(name[len(start) :]):  # another program's upload
                continue
            started: datetime = item["Initiated"]
            what = f"unfinished multipart upload of s3://{self.bucket}/{name}"
            found.append(Leftover(what, started, partial(self._abort, name, upload_id)))
        return found

    def _abort(self, name: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except self._errors as exc:
            if _error_code(exc) not in ("NoSuchUpload", "404"):
                raise self._failure("abort the multipart upload of", name, exc) from exc

    def presign_download(
        self, key: str, *, filename: str, media_type: str, expires_s: int
    ) -> str | None:
        """Return a presigned GET of `key` for the public endpoint, valid for `expires_s`."""
        params = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
            "ResponseContentType": media_type,
        }
        try:
            return str(
                self._signer.generate_presigned_url(
                    "get_object", Params=params, ExpiresIn=expires_s
                )
            )
        except self._errors as exc:
            raise self._failure("sign a download of", str(params["Key"]), exc) from exc

    def check(self) -> None:
        """Raise StorageError unless the spool folder and the bucket take a small blob."""
        check_writable(self.create_writer, f"spool folder {self._temp_dir}")
        name = self.object_key(self._probe)
        try:
            self._client.put_object(Bucket=self.bucket, Key=name, Body=b"ok")
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except self._errors as exc:
            hint = _CONFIG_HINTS.get(_error_code(exc))
            if hint is not None or type(exc).__name__ in _CREDENTIAL_ERRORS:
                raise StorageConfigError(
                    f"bucket {self.bucket!r} at {self.endpoint()} refuses this server: "
                    f"{_reason(exc)}{f'; {hint}' if hint else ''}"
                ) from exc
            raise StorageError(
                f"bucket {self.bucket!r} at {self.endpoint()} is not reachable or not "
                f"writable: {_reason(exc)}"
            ) from exc

    def endpoint(self) -> str:
        """Return the S3 endpoint in use, without any user information."""
        return _shown_endpoint(str(self._client.meta.endpoint_url))

    def describe(self) -> str:
        """Return where blobs are kept, for logs (no credentials)."""
        return f"s3://{self.bucket}/{self.prefix} (endpoint {self.endpoint()})"
