"""Weights from ultralytics 8.4: the upload URL (`POST /api/webhooks/models/upload`) and the
keyless `PUT` to it.

See docs/protocol/platform.md §4.5, §4.6 and §9.7. The answer to an upload-URL request always
holds `uploadUrl` (the client crashes at the end of training without it). The PUT is
authorised by the signed token in its path, streams to storage with its sha256 computed on the
way, never redirects, and may be repeated until the URL expires; the file stays staged until
`checkpoint_saved` or `training_complete` promotes it.
"""

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from trainhub.protocol import paths
from trainhub.protocol.platform import UploadAnswer, UploadRequest
from trainhub.server.bodies import declared_length, in_batches, iter_body, json_body_schema
from trainhub.server.deps import CurrentUser, Db, SettingsDep, StorageDep, public
from trainhub.server.errors import BadRequestError, ForbiddenError, HubError, PayloadTooLargeError
from trainhub.server.platform.routing import create_router, platform_body
from trainhub.server.services import staging
from trainhub.server.signing import create_upload_token, verify_upload_token
from trainhub.server.state import request_hub
from trainhub.server.storage import BlobWriter

router = create_router()
Request_ = Annotated[UploadRequest, Depends(platform_body(UploadRequest))]
PUT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class LengthRequiredError(HubError):
    status = 411


class UnknownUploadError(HubError):
    """A forged or mangled upload URL: 404 that names nothing, like a bad download link."""

    status = 404


@router.post(
    paths.PLATFORM_UPLOAD_REQUEST,
    response_model=UploadAnswer,
    openapi_extra=json_body_schema(UploadRequest),
)
def request_upload(
    request: Request,
    user: CurrentUser,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
    body: Request_,
) -> dict[str, Any]:
    """Hand out a URL to PUT a run's weights file to (valid `platform_upload_ttl_s` seconds)."""
    issued = staging.issue_upload(
        db, storage, user.user_id, user.name, body, settings.platform_upload_ttl_s
    )
    links = request_hub(request).links
    token = create_upload_token(links.secret, issued.upload_id, issued.expires)
    url = links.public_url + paths.PLATFORM_UPLOAD.format(upload_id=issued.upload_id, token=token)
    return {
        "uploadUrl": url,
        "gcsPath": issued.path,
        "uploadPath": issued.path,
        "modelId": issued.model_id,
    }


def _write(writer: BlobWriter, batch: list[bytes]) -> None:
    for chunk in batch:
        writer.write(chunk)


@router.put(paths.PLATFORM_UPLOAD, openapi_extra=PUT_BODY)
@public
async def put_weights(
    upload_id: str,
    token: str,
    request: Request,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Stage the weights file PUT to an upload URL (the token in the path is the credential)."""
    valid = verify_upload_token(request_hub(request).links.secret, token, upload_id)
    if valid is None:
        raise UnknownUploadError("this is not an upload URL of this hub; ask for a new one")
    if not valid:
        raise ForbiddenError("the upload URL expired; the trainer asks for a new one")
    await run_in_threadpool(staging.check_receivable, db, upload_id)
    length = declared_length(request)
    if length is None:
        raise LengthRequiredError("send Content-Length: the size of the file in bytes")
    if length > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"the file has {length} bytes, more than this hub's limit of "
            f"{settings.max_upload_bytes}; ask the operator to raise TRAINHUB_MAX_UPLOAD_BYTES"
        )
    writer = storage.create_writer()
    try:
        body = iter_body(request, length, settings.body_idle_timeout_s, settings.body_deadline_s)
        async for batch in in_batches(body):
            await run_in_threadpool(_write, writer, batch)
        if writer.size != length:
            raise BadRequestError(
                f"received {writer.size} bytes but Content-Length said {length}; PUT the file again"
            )
        sha256 = await run_in_threadpool(staging.receive_upload, db, storage, upload_id, writer)
    except BaseException:
        writer.abort()
        raise
    return {"received": True, "sha256": sha256, "size": length}
