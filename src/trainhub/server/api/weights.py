"""`POST /v1/models/{id}/upload`: checkpoints and final weights (docs/protocol/hub-v1.md §5.10).

The file part streams to storage with its sha256 computed on the way; it is published under a
key made of the model id and that hash, and recorded only after it is durably in place.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.protocol.metrics import MAX_EPOCH
from trainhub.server.db import models as queries
from trainhub.server.db import owned
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow
from trainhub.server.deps import CurrentUser, Db, SettingsDep, StorageDep
from trainhub.server.errors import BadRequestError, ValidationError
from trainhub.server.multipart import MultipartForm, UploadedFile, read_multipart
from trainhub.server.storage import BlobWriter, Storage

router = APIRouter(tags=["weights"])
WEIGHT_PARTS = ("last.pt", "best.pt")
KINDS = {"epoch": "last", "final": "best"}
EPOCH_RE = re.compile(r"[0-9]{1,7}")  # ASCII only: str.isdigit() also takes "²" and "٣"

UPLOAD_SCHEMA = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["epoch", "type"],
            "properties": {
                "epoch": {"type": "string"},
                "type": {"type": "string", "enum": list(KINDS)},
                "isBest": {"type": "string"},
                "map": {"type": "string"},
                "sha256": {"type": "string"},
                "last.pt": {"type": "string", "format": "binary"},
                "best.pt": {"type": "string", "format": "binary"},
            },
        }
    }
}


def _flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class WeightSpec:
    """What an upload says about its file: checkpoint or final, epoch, flags, claimed hash."""

    kind: str
    epoch: int
    is_best: bool
    map_value: float | None
    sha256: str | None


def parse_weight_fields(fields: Mapping[str, str]) -> WeightSpec:
    """Return the upload's fields (`type`, `epoch`, `isBest`, `map`, `sha256`), checked."""
    kind = KINDS.get(fields.get("type", ""))
    if kind is None:
        raise ValidationError(
            "field 'type' must be 'epoch' (a checkpoint) or 'final' (the weights)"
        )
    epoch_text = fields.get("epoch", "").strip()
    if not EPOCH_RE.fullmatch(epoch_text) or int(epoch_text) > MAX_EPOCH:
        raise ValidationError(
            f"field 'epoch' must be a whole number from 0 to {MAX_EPOCH} (the 0-based epoch)"
        )
    map_value: float | None = None
    if fields.get("map", "").strip():
        try:
            map_value = float(fields["map"])
        except ValueError as exc:
            raise ValidationError("field 'map' must be a number") from exc
        map_value = map_value if math.isfinite(map_value) else None
    claimed = fields.get("sha256", "").strip().lower() or None
    return WeightSpec(kind, int(epoch_text), _flag(fields.get("isBest")), map_value, claimed)


def _one_file(form: MultipartForm) -> UploadedFile:
    if len(form.files) != 1:
        raise ValidationError(
            "send exactly one file part, named last.pt (type=epoch) or best.pt (type=final)"
        )
    return form.files[0]


def store_weights(
    db: Database,
    storage: Storage,
    model_id: str,
    user_id: str,
    spec: WeightSpec,
    writer: BlobWriter,
) -> dict[str, Any]:
    """Verify a received weights file, publish it, and record it on the model."""
    if writer.size == 0:
        raise ValidationError("the weights file is empty")
    sha256 = writer.hexdigest()
    if spec.sha256 and spec.sha256 != sha256:
        raise BadRequestError(
            "sha256 does not match the bytes received: the file changed or was "
            "damaged in transit; upload it again"
        )
    key = f"models/{model_id}/{spec.kind}-{sha256}"
    writer.publish(key)
    try:
        with db.write() as session:
            row = owned.load(session, ModelRow, model_id, user_id, write=True)
            garbage = queries.record_weights(
                session,
                row,
                kind=spec.kind,
                epoch=spec.epoch,
                is_best=spec.is_best,
                map_value=spec.map_value,
                key=key,
                sha256=sha256,
                size=writer.size,
            )
    except BaseException:
        storage.delete(key)
        raise
    for old in garbage:
        storage.delete(old)
    return {"kind": spec.kind, "epoch": spec.epoch, "sha256": sha256, "size_bytes": writer.size}


def _check_model(db: Database, model_id: str, user_id: str) -> None:
    with db.read() as session:
        owned.load(session, ModelRow, model_id, user_id, write=True)


@router.post(
    paths.MODEL_UPLOAD,
    response_model=Envelope[dict[str, Any]],
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
    await run_in_threadpool(_check_model, db, model_id, user.user_id)
    form = await read_multipart(
        request,
        storage,
        lambda name, _: name in WEIGHT_PARTS,
        settings.max_upload_bytes,
    )
    try:
        spec = parse_weight_fields(form.fields)
        upload = _one_file(form)
        data = await run_in_threadpool(
            store_weights, db, storage, model_id, user.user_id, spec, upload.writer
        )
    finally:
        form.abort()
    return {"success": True, "message": "weights stored", "data": data}
