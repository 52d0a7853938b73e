"""Resumable weights uploads with tus 1.0 (core, creation, checksum, termination) under /v1/uploads.

A client creates an upload with the same fields as `POST /v1/models/{id}/upload` in
`Upload-Metadata`, then PATCHes bytes from the offset the server acknowledged. Bytes received
before a dropped connection are kept (fsynced) unless the PATCH carried an `Upload-Checksum` that
can no longer be verified, so a resumed upload re-sends only what was lost. When the last byte
arrives the file is verified against the whole-file `sha256` and published like any upload.

The bytes collect where every replica reaches them (services/uploads.py), so behind a load
balancer any replica answers HEAD and PATCH for any upload; a PATCH that races another one for
the same offset gets 409 (the client asks HEAD again), never a 500.
"""

import asyncio
import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from trainhub.protocol import paths
from trainhub.server.bodies import in_batches, iter_body, parse_whole_number
from trainhub.server.deps import CurrentUser, Db, SettingsDep, StorageDep, public
from trainhub.server.errors import (
    BadRequestError,
    ConflictError,
    HubError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnsupportedMediaTypeError,
)
from trainhub.server.services import uploads
from trainhub.server.services.weights import read_upload_fields
from trainhub.server.state import request_hub

router = APIRouter(tags=["resumable uploads"])
TUS_VERSION = "1.0.0"
TUS_HEADERS = {"Tus-Resumable": TUS_VERSION}
CHECKSUMS = ("sha1", "sha256", "md5")
_locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}


@asynccontextmanager
async def _exclusive(upload_id: str) -> AsyncIterator[None]:
    """Hold the lock for one upload; the entry is dropped when nobody holds or waits for it."""
    lock, holders = _locks.setdefault(upload_id, (asyncio.Lock(), [0]))
    holders[0] += 1
    try:
        async with lock:
            yield
    finally:
        holders[0] -= 1
        if not holders[0]:
            del _locks[upload_id]


class ChecksumMismatchError(HubError):
    status = 460


class PreconditionFailedError(HubError):
    status = 412


def _require_tus(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise PreconditionFailedError(
            "send Tus-Resumable: 1.0.0 (the only tus version served)",
            headers={"Tus-Version": TUS_VERSION},
        )


def parse_metadata(header: str) -> dict[str, str]:
    """Return the `Upload-Metadata` pairs (`key base64value`, comma-separated) decoded."""
    fields: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        try:
            fields[key] = base64.b64decode(value, validate=True).decode() if value else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise BadRequestError(f"Upload-Metadata value of {key[:40]!r} is not base64") from exc
    return fields


def _whole_number(request: Request, name: str) -> int:
    value = parse_whole_number(request.headers.get(name.lower()))
    if value is None:
        raise BadRequestError(f"send {name} as a whole number of bytes")
    return value


def _checksum(request: Request) -> tuple[str, bytes] | None:
    header = request.headers.get("upload-checksum")
    if header is None:
        return None
    algorithm, _, encoded = header.partition(" ")
    if algorithm not in CHECKSUMS:
        raise BadRequestError(f"Upload-Checksum algorithm must be one of {', '.join(CHECKSUMS)}")
    try:
        return algorithm, base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise BadRequestError("Upload-Checksum digest is not base64") from exc


@router.options(paths.UPLOADS, status_code=204, response_class=Response)
@public
def discover(settings: SettingsDep) -> Response:
    """Tell tus clients what this server supports."""
    return Response(
        status_code=204,
        headers={
            **TUS_HEADERS,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": "creation,checksum,termination",
            "Tus-Max-Size": str(settings.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
        },
    )


@router.post(paths.UPLOADS, status_code=201, response_class=Response)
async def create_upload(
    request: Request, user: CurrentUser, db: Db, storage: StorageDep, settings: SettingsDep
) -> Response:
    """Start a resumable upload; Upload-Metadata holds modelId, type, epoch, isBest/map, sha256."""
    _require_tus(request)
    length = _whole_number(request, "Upload-Length")
    if not 0 < length <= settings.max_upload_bytes:
        raise PayloadTooLargeError(f"Upload-Length must be 1 to {settings.max_upload_bytes} bytes")
    fields = parse_metadata(request.headers.get("upload-metadata", ""))
    read_upload_fields(fields)
    upload_id = await run_in_threadpool(
        uploads.create_upload, db, storage, user.user_id, length, fields
    )
    location = request_hub(request).links.public_url + paths.UPLOAD.format(upload_id=upload_id)
    return Response(
        status_code=201, headers={**TUS_HEADERS, "Location": location, "Upload-Offset": "0"}
    )


@router.head(paths.UPLOAD, response_class=Response)
def upload_offset(upload_id: str, request: Request, user: CurrentUser, db: Db) -> Response:
    """Tell the client how many bytes the server has, to resume from there."""
    _require_tus(request)
    row = uploads.load_upload(db, upload_id, user.user_id)
    return Response(
        status_code=200,
        headers={
            **TUS_HEADERS,
            "Upload-Offset": str(row.offset),
            "Upload-Length": str(row.length),
            "Cache-Control": "no-store",
        },
    )


async def _receive(
    request: Request, appending: uploads.Appending, limit: int, hasher: Any
) -> Exception | None:
    """Feed the body to `appending`; return why it ended early (None: it arrived whole)."""

    def write(batch: list[bytes]) -> None:
        appending.write(batch)
        if hasher is not None:
            for chunk in batch:
                hasher.update(chunk)

    settings = request_hub(request).settings
    body = iter_body(request, limit, settings.body_idle_timeout_s, settings.body_deadline_s)
    try:
        async for batch in in_batches(body):
            await run_in_threadpool(write, batch)
    except (ClientDisconnect, RequestTimeoutError, PayloadTooLargeError) as exc:
        return exc
    return None


@router.patch(
    paths.UPLOAD,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/offset+octet-stream": {
                    "schema": {"type": "string", "format": "binary"}
                }
            }
        }
    },
)
async def append_to_upload(
    upload_id: str,
    request: Request,
    user: CurrentUser,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
    upload_offset: Annotated[str | None, Header()] = None,
) -> Response:
    """Append bytes at `Upload-Offset`; the last byte publishes the weights."""
    _require_tus(request)
    if request.headers.get("content-type") != "application/offset+octet-stream":
        raise UnsupportedMediaTypeError("send Content-Type: application/offset+octet-stream")
    offset = _whole_number(request, "Upload-Offset")
    checksum = _checksum(request)
    async with _exclusive(upload_id):
        row = await run_in_threadpool(uploads.load_upload, db, upload_id, user.user_id)
        if offset != row.offset:
            raise ConflictError(
                f"Upload-Offset {offset} does not match the server's {row.offset}; "
                "send HEAD to learn where to resume"
            )
        hasher = hashlib.new(checksum[0]) if checksum else None
        appending = await run_in_threadpool(
            partial(uploads.Appending, all_or_nothing=checksum is not None), db, storage, row
        )
        try:
            error = await _receive(request, appending, row.length - offset, hasher)
            if checksum and (error or hasher is None or hasher.digest() != checksum[1]):
                reached = await run_in_threadpool(appending.drop)
                if error is None:
                    raise ChecksumMismatchError(
                        "Upload-Checksum does not match the bytes received; send this part again",
                        headers=TUS_HEADERS,
                    )
            else:
                reached = await run_in_threadpool(appending.keep)
                if reached == row.length:  # every byte is here, even if the client left
                    await run_in_threadpool(appending.finish)
        finally:
            await run_in_threadpool(appending.close)
        if error is not None and reached < row.length:
            raise error
    return Response(status_code=204, headers={**TUS_HEADERS, "Upload-Offset": str(reached)})


@router.delete(paths.UPLOAD, status_code=204, response_class=Response)
async def terminate_upload(
    upload_id: str, request: Request, user: CurrentUser, db: Db, storage: StorageDep
) -> Response:
    """Abandon an upload and free its space (after a PATCH in progress has ended)."""
    _require_tus(request)
    async with _exclusive(upload_id):
        await run_in_threadpool(uploads.load_upload, db, upload_id, user.user_id)
        await run_in_threadpool(uploads.discard_upload, db, storage, upload_id)
    return Response(status_code=204, headers=TUS_HEADERS)
