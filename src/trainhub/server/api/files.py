"""Signed downloads `/files/<token>/<id>/<label>/<name>`: no auth header, urllib-friendly.

Answers with Content-Length, a strong ETag (the sha256), single byte ranges, and 304 for a
matching If-None-Match. Any bad, expired or stale link is a plain 404 that names no object, and
so is a link whose reader may no longer read the object (it turned private, or was deleted).
"""

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select

from trainhub.protocol.ids import is_id
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import DatasetRow, ModelRow, ProjectRow, WeightRow
from trainhub.server.deps import Db, StorageDep, public
from trainhub.server.errors import HubError, NotFoundError
from trainhub.server.links import (
    COVER_LABEL,
    WEIGHT_LABELS,
    cover_file_name,
    dataset_file_name,
    weight_file_name,
)
from trainhub.server.signing import verify_token
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
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
LINK_GONE = "download link is invalid or expired; read the object again for a fresh link"


class LinkGoneError(HubError):
    status = 404


@dataclass(frozen=True)
class Blob:
    key: str
    sha256: str
    name: str
    media_type: str
    owner_id: str
    public: bool

    def is_readable_by(self, reader: str | None) -> bool:
        """Tell whether `reader` (None: anyone) may read the object this file belongs to."""
        return self.public or (reader is not None and reader == self.owner_id)


def _find_blob(db: Database, object_id: str, label: str) -> Blob | None:
    with db.read() as session:
        if label in WEIGHT_LABELS.values():
            kind = next(k for k, v in WEIGHT_LABELS.items() if v == label)
            found = session.execute(
                select(WeightRow, ModelRow.owner_id, ModelRow.public)
                .join(ModelRow, ModelRow.seq == WeightRow.model_seq)
                .where(
                    ModelRow.id == object_id, ModelRow.deleted_at.is_(None), WeightRow.kind == kind
                )
            ).first()
            if found is None:
                return None
            weight, owner_id, is_public = found
            return Blob(
                weight.blob_key,
                weight.sha256,
                weight_file_name(object_id, weight),
                "application/octet-stream",
                owner_id,
                is_public,
            )
        if label == COVER_LABEL:
            project = session.scalars(
                select(ProjectRow).where(
                    ProjectRow.id == object_id, ProjectRow.deleted_at.is_(None)
                )
            ).first()
            if project is None or not project.cover_key or not project.cover_sha256:
                return None
            return Blob(
                project.cover_key,
                project.cover_sha256,
                cover_file_name(project),
                project.cover_type or "application/octet-stream",
                project.owner_id,
                project.public,
            )
        dataset = session.scalars(
            select(DatasetRow).where(DatasetRow.id == object_id, DatasetRow.deleted_at.is_(None))
        ).first()
        if (
            dataset is None
            or not dataset.blob_key
            or not dataset.sha256
            or dataset.filename != label
        ):
            return None
        return Blob(
            dataset.blob_key,
            dataset.sha256,
            dataset_file_name(dataset),
            "application/zip" if label.lower().endswith(".zip") else "application/x-tar",
            dataset.owner_id,
            dataset.public,
        )


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
    range_header: Annotated[str | None, Header(alias="range")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Send one version of a weights file, dataset archive or cover image."""
    blob = _find_blob(db, object_id, label) if is_id(object_id) else None
    secret: bytes = request.app.state.links.secret
    grant = (
        verify_token(secret, token, object_id, label, blob.sha256)
        if blob is not None and blob.name == name
        else None
    )
    if blob is None or grant is None or not blob.is_readable_by(grant.reader):
        raise LinkGoneError(LINK_GONE)
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
