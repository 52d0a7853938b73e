"""`ul://` URIs of ultralytics 8.4: a model's weights and a dataset as NDJSON.

`model=ul://OWNER/PROJECT/MODEL` asks `/api/models/.../files` and downloads the first file's
signed URL; `data=ul://OWNER/datasets/SLUG` asks `/api/datasets/.../export` and downloads the
NDJSON, whose image URLs are signed links of their own (docs/protocol/platform.md §4.8, §9.10).
Every URL is made for the caller, so it works while the caller may read the object.
"""

import json
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from trainhub.protocol import paths
from trainhub.protocol.platform import DatasetExport, ModelFiles
from trainhub.protocol.weights import WeightKind
from trainhub.server.deps import CurrentUser, Db, StorageDep, public
from trainhub.server.links import weight_file_name
from trainhub.server.platform.routing import create_router
from trainhub.server.services import dataset_exports, names
from trainhub.server.services.dataset_exports import NDJSON_LABEL, OpenExport
from trainhub.server.state import request_hub

router = create_router()
NDJSON_TYPE = "application/x-ndjson"


@router.get(paths.PLATFORM_MODEL_FILES, response_model=ModelFiles)
def model_files(
    owner: str, project: str, model: str, request: Request, user: CurrentUser, db: Db
) -> dict[str, Any]:
    """List a model's weights (final first) with signed, version-unique download URLs."""
    context = names.read_named_model(db, user.user_id, user.name, owner, project, model)
    links = request_hub(request).links.as_reader(user.user_id)
    files = []
    for kind in (WeightKind.FINAL, WeightKind.CHECKPOINT):
        weight = context.weights.get(kind.value)
        if weight is not None:
            files.append(
                {
                    "name": weight_file_name(context.row.id, weight),
                    "size": weight.size_bytes,
                    "downloadUrl": links.weights(context.row.id, weight),
                }
            )
    return {"files": files}


@router.get(paths.PLATFORM_DATASET_EXPORT, response_model=DatasetExport)
async def dataset_export(
    owner: str, slug: str, request: Request, user: CurrentUser, db: Db, storage: StorageDep
) -> dict[str, Any]:
    """Return where to download a hosted dataset as NDJSON (built on the first export)."""
    ref = await run_in_threadpool(
        dataset_exports.export_dataset, db, storage, user.user_id, owner, slug
    )
    links = request_hub(request).links.as_reader(user.user_id)
    token = links.token(ref.dataset_id, NDJSON_LABEL, ref.archive_sha256)
    path = paths.PLATFORM_DATASET_NDJSON.format(
        token=token, dataset_id=ref.dataset_id, name=ref.file_name
    )
    return {"downloadUrl": links.public_url + path, "version": ref.archive_sha256[:16]}


def render_ndjson(request: Request, export: OpenExport) -> bytes:
    """Return the NDJSON text: the dataset line, then one line per image with a signed URL."""
    manifest = export.manifest
    links = request_hub(request).links.as_reader(export.reader)
    first = {
        "type": "dataset",
        "task": manifest.task,
        "class_names": {str(k): v for k, v in manifest.class_names.items()},
        **manifest.extra,
    }
    lines = [json.dumps(first)]
    for image, (label, sha256, name) in zip(
        manifest.images, dataset_exports.image_links(export), strict=True
    ):
        record: dict[str, Any] = {
            "type": "image",
            "file": image.file,
            "url": links.download(export.dataset_id, label, sha256, name),
            "split": image.split,
            "annotations": image.annotations,
        }
        if image.width and image.height:
            record.update(width=image.width, height=image.height)
        lines.append(json.dumps(record))
    return ("\n".join(lines) + "\n").encode()


@router.get(paths.PLATFORM_DATASET_NDJSON, response_class=Response)
@public
def dataset_ndjson(
    token: str, dataset_id: str, name: str, request: Request, db: Db, storage: StorageDep
) -> Response:
    """Send a dataset's NDJSON export (the token in the path is the credential)."""
    secret = request_hub(request).links.secret
    export = dataset_exports.open_export(db, storage, secret, token, dataset_id, name)
    return Response(
        render_ndjson(request, export),
        media_type=NDJSON_TYPE,
        headers={
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )
