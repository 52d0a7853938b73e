"""Datasets in the dashboard: the list with download links, and uploads from the browser.

`POST /datasets/upload` is the page's own same-origin endpoint: it takes the session cookie and
the CSRF token (header or form field) instead of an API key, then does what the API's dataset
create and upload do: stream the archive to storage, inspect it without extracting it
(`archives.inspect_archive`), publish it and record it. A script (XHR, which shows a progress
bar) gets JSON; a plain form post is redirected back to the list.
"""

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from trainhub.protocol.ids import ID_PATTERN
from trainhub.server.archives import is_archive_name
from trainhub.server.db.tables import DatasetRow
from trainhub.server.deps import Db, SettingsDep, StorageDep
from trainhub.server.errors import ValidationError
from trainhub.server.links import ARCHIVE_SUFFIXES
from trainhub.server.multipart import MultipartForm, UploadedFile, read_multipart
from trainhub.server.records import dataset_record
from trainhub.server.services import datasets, resources
from trainhub.server.web import csrf
from trainhub.server.web.auth import PageLinks, SignedIn
from trainhub.server.web.render import render
from trainhub.server.web.routing import accepts_html, create_router, see_other

router = create_router()
PAGE_SIZE = 50
FILE_FIELD = "file"
NOTICES = {"uploaded": "The dataset was uploaded and checked."}


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(
    request: Request,
    user: SignedIn,
    db: Db,
    links: PageLinks,
    after: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """List the user's datasets with download links, and offer an upload form."""
    page = resources.list_page(
        db, DatasetRow, user.user_id, limit=PAGE_SIZE, after=after, public=False
    )
    datasets = [dataset_record(row, links) for row in page.rows]
    return render(
        request,
        "datasets.html",
        user,
        datasets=datasets,
        total=page.total,
        next_cursor=page.last_record_id,
        after=after,
        notice=NOTICES.get(notice or ""),
        suffixes=", ".join(ARCHIVE_SUFFIXES),
    )


def _one_archive(form: MultipartForm) -> UploadedFile:
    if len(form.files) != 1 or form.files[0].writer.size == 0:
        raise ValidationError("choose one dataset archive (.zip, .tar, .tar.gz or .tgz) to upload")
    upload = form.files[0]
    if not is_archive_name(upload.filename):
        raise ValidationError(
            f"{upload.filename[:80]!r} is not a dataset archive: upload a .zip, .tar, .tar.gz "
            "or .tgz file"
        )
    return upload


def _display_name(form: MultipartForm, upload: UploadedFile) -> str:
    name = form.fields.get("name", "").strip()[:200]
    if name:
        return name
    filename = PurePosixPath(upload.filename).name
    suffix = next((s for s in ARCHIVE_SUFFIXES if filename.lower().endswith(s)), "")
    return filename[: len(filename) - len(suffix)] or "dataset"


@router.post("/datasets/upload", response_model=None)
async def upload_dataset(
    request: Request,
    user: SignedIn,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
    links: PageLinks,
) -> Response:
    """Create a dataset from an archive sent as the multipart file part `file`."""
    form = await read_multipart(
        request,
        storage,
        lambda field, _filename: field == FILE_FIELD,
        settings.max_upload_bytes,
    )
    try:
        presented = request.headers.get(csrf.HEADER) or form.fields.get(csrf.FIELD)
        csrf.check_token(request, user, presented)
        upload = _one_archive(form)
        document = {
            "meta": {"name": _display_name(form, upload)},
            "filename": PurePosixPath(upload.filename).name,
            "public": form.fields.get("public") == "yes",
        }
        stored = await run_in_threadpool(
            datasets.store_archive, db, storage, user.user_id, upload, document=document
        )
    finally:
        form.abort()
    if accepts_html(request):
        return see_other("/datasets?notice=uploaded")
    record = dataset_record(stored.dataset, links)
    record["warning"] = stored.warning
    message = stored.warning or f"dataset stored ({record['layout']} layout)"
    return JSONResponse({"success": True, "message": message, "data": record})
