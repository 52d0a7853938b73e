"""Signed downloads `/files/<token>/<id>/<label>/<name>`: no auth header, urllib-friendly.

Answers with Content-Length, a strong ETag (the sha256), single byte ranges, and 304 for a
matching If-None-Match. Any bad, expired or stale link is a plain 404 that names no object, and
so is a link whose reader may no longer read the object (it turned private, or was deleted).
With `s3_presigned_downloads`, a GET that passed those checks is redirected (307) to a presigned
URL of the bucket (services/files.py).
"""

import re
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from trainhub.server.deps import Db, SettingsDep, StorageDep, public
from trainhub.server.errors import HubError, NotFoundError
from trainhub.server.services.files import presigned_location, resolve_link
from trainhub.server.state import request_hub
from trainhub.server.storage import BlobNotFoundError

router = APIRouter(tags=["files"])
DOWNLOAD_TYPES = (
    "application/octet-stream",
    "application/zip",
    "application/x-tar",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
)
_RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the inclusive (start, end) of a single-range header; None means the whole file."""
    match = _RANGE_RE.match((header or "").strip())
    if match is None or size == 0:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiableError(
            f"range not satisfiable; the file has {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


class RangeNotSatisfiableError(HubError):
    status = 416


@router.api_route(
    "/files/{token}/{object_id}/{label}/{name}",
    methods=["GET", "HEAD"],
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in DOWNLOAD_TYPES}},
        206: {},
        304: {},
        307: {"description": "with s3_presigned_downloads: read the file from the bucket"},
        404: {},
        416: {},
    },
)
@public
def download(
    token: str,
    object_id: str,
    label: str,
    name: str,
    request: Request,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
    range_header: Annotated[str | None, Header(alias="range")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Send one version of a weights file, dataset archive or cover image."""
    secret = request_hub(request).links.secret
    blob = resolve_link(db, secret, token, object_id, label, name)
    etag = f'"{blob.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": f'attachment; filename="{blob.name}"',
    }
    if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    try:
        size = storage.size(blob.key)
    except BlobNotFoundError as exc:  # recorded but gone from storage: a 404, not a 500
        raise NotFoundError("file", name) from exc
    if request.method == "GET" and settings.s3_presigned_downloads:
        location = presigned_location(storage, blob)
        if location is not None:
            return RedirectResponse(location, 307, headers={"Cache-Control": "no-store"})
    span = _byte_range(range_header, size)
    start, end = span or (0, size - 1)
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    status = 200
    if span is not None:
        status, headers["Content-Range"] = 206, f"bytes {start}-{end}/{size}"
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=blob.media_type)
    try:
        body = storage.iter_range(blob.key, start, end)
    except BlobNotFoundError as exc:  # removed since its size was read
        raise NotFoundError("file", name) from exc
    return StreamingResponse(body, status_code=status, headers=headers, media_type=blob.media_type)
