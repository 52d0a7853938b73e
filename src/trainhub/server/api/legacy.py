"""The remaining HUB routes: model reset, and the export/predict family this server lacks yet.

Export and hosted inference are not available on this server yet: they answer 501 with a
message, never a fake success (docs/protocol/hub-v1.md §5.12-§5.15, §5.22).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.server.api.models import delete_blobs
from trainhub.server.bodies import json_body_schema, json_object
from trainhub.server.db import models as queries
from trainhub.server.db import owned
from trainhub.server.db.tables import ModelRow
from trainhub.server.deps import CurrentUser, Db, OptionalUser, StorageDep, caller_id
from trainhub.server.errors import NotImplementedYetError, ValidationError

router = APIRouter(tags=["legacy"])
Body = Annotated[dict[str, Any], Depends(json_object)]
EXPORT_MESSAGE = (
    "exporting models is not available on this server yet; export locally with "
    "`YOLO(<model url>).export(format=...)`"
)
PREDICT_MESSAGE = (
    "hosted inference is not available on this server yet; load the model with "
    "`YOLO(<model url>)` and predict locally"
)


@router.post(
    paths.MODEL_RESET,
    response_model=Envelope[dict[str, Any]],
    openapi_extra=json_body_schema(
        {"type": "object", "required": ["modelId"], "properties": {"modelId": {"type": "string"}}}
    ),
)
def reset_model(user: CurrentUser, db: Db, storage: StorageDep, body: Body) -> dict[str, Any]:
    """Return a model to `new`: metrics, checkpoints and weights are removed."""
    model_id = body.get("modelId")
    if not isinstance(model_id, str):
        raise ValidationError('send {"modelId": "<model id>"}')
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user.user_id, write=True)
        garbage = queries.reset_model(session, row)
    delete_blobs(storage, garbage)
    return {"success": True, "message": "model reset", "data": {"id": model_id}}


@router.post(paths.MODEL_EXPORT, response_model=None, responses={501: {}})
def export_model(model_id: str, user: CurrentUser, db: Db) -> None:
    """Not available yet: answers 501."""
    with db.read() as session:
        owned.load(session, ModelRow, model_id, user.user_id)
    raise NotImplementedYetError(EXPORT_MESSAGE)


@router.post(paths.GET_EXPORT, response_model=None, responses={501: {}})
def get_export(user: CurrentUser) -> None:
    """Not available yet: answers 501."""
    raise NotImplementedYetError(EXPORT_MESSAGE)


@router.post(paths.PREDICT, response_model=None, responses={501: {}})
def predict(model_id: str, user: OptionalUser, db: Db) -> None:
    """Not available yet: answers 501."""
    with db.read() as session:
        owned.load(session, ModelRow, model_id, caller_id(user))
    raise NotImplementedYetError(PREDICT_MESSAGE)


@router.post(paths.CLEAR_EXPORTS, response_model=Envelope[dict[str, Any]])
def clear_exports(model_id: str, user: CurrentUser, db: Db) -> dict[str, Any]:
    """Remove a model's exports: there are none on this server, so this only checks the model."""
    with db.read() as session:
        owned.load(session, ModelRow, model_id, user.user_id, write=True)
    return {"success": True, "message": "no exports to clear", "data": {"id": model_id}}
