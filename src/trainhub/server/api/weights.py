"""`POST /v1/models/{id}/upload`: epoch checkpoints and final weights.

See docs/protocol/hub-v1.md §5.10.

The file part streams to storage with its sha256 computed on the way (server/multipart.py);
services/weights.py verifies, publishes and records it.
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.protocol.weights import StoredWeights, WeightKind
from trainhub.server.deps import CurrentUser, Db, SettingsDep, StorageDep
from trainhub.server.errors import ValidationError
from trainhub.server.multipart import read_multipart
from trainhub.server.services import weights

router = APIRouter(tags=["weights"])
UPLOAD_SCHEMA = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["epoch", "type"],
            "properties": {
                "epoch": {"type": "string"},
                "type": {"type": "string", "enum": [kind.upload_type for kind in WeightKind]},
                "isBest": {"type": "string"},
                "map": {"type": "string"},
                "sha256": {"type": "string"},
                **{kind.filename: {"type": "string", "format": "binary"} for kind in WeightKind},
            },
        }
    }
}


def _is_weights_part(name: str, _filename: str) -> bool:
    return WeightKind.from_filename(name) is not None


@router.post(
    paths.MODEL_UPLOAD,
    response_model=Envelope[StoredWeights],
    openapi_extra={"requestBody": {"required": True, "content": UPLOAD_SCHEMA}},
)
async def upload_weights(
    model_id: str,
    request: Request,
    user: CurrentUser,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Store an epoch checkpoint (`last.pt`, type=epoch) or the final weights (`best.pt`)."""
    await run_in_threadpool(weights.check_writable, db, model_id, user.user_id)
    form = await read_multipart(request, storage, _is_weights_part, settings.max_upload_bytes)
    try:
        upload = weights.read_upload_fields(form.fields)
        if len(form.files) != 1:
            raise ValidationError(
                "send exactly one file part, named last.pt (type=epoch) or best.pt (type=final)"
            )
        stored = await run_in_threadpool(
            weights.store_weights, db, storage, model_id, user.user_id, upload, form.files[0].writer
        )
    finally:
        form.abort()
    return {"success": True, "message": "weights stored", "data": stored.model_dump()}
