"""The remaining HUB routes: model reset, and the export/predict family this server lacks yet.

Export and hosted inference are not available on this server yet: they answer 501 with a
message, never a fake success (docs/protocol/hub-v1.md §5.12-§5.15, §5.22).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope, IdRecord
from trainhub.protocol.models import ModelReset
from trainhub.server.bodies import body_of, json_body_schema
from trainhub.server.deps import CurrentUser, Db, Heartbeats, OptionalUser, StorageDep, caller_id
from trainhub.server.errors import NotImplementedYetError
from trainhub.server.services import models

router = APIRouter(tags=["legacy"])
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
    response_model=Envelope[IdRecord],
    openapi_extra=json_body_schema(ModelReset),
)
def reset_model(
    user: CurrentUser,
    db: Db,
    storage: StorageDep,
    heartbeats: Heartbeats,
    body: Annotated[ModelReset, Depends(body_of(ModelReset))],
) -> dict[str, Any]:
    """Return a model to `new`: metrics, checkpoints and weights are removed."""
    models.reset_model(db, storage, heartbeats, body.modelId, user.user_id)
    return {"success": True, "message": "model reset", "data": {"id": body.modelId}}


@router.post(paths.MODEL_EXPORT, response_model=None, responses={501: {}})
def export_model(model_id: str, user: CurrentUser, db: Db) -> None:
    """Not available yet: answers 501."""
    models.read_model(db, model_id, user.user_id)
    raise NotImplementedYetError(EXPORT_MESSAGE)


@router.post(paths.GET_EXPORT, response_model=None, responses={501: {}})
def get_export(user: CurrentUser) -> None:
    """Not available yet: answers 501."""
    raise NotImplementedYetError(EXPORT_MESSAGE)


@router.post(paths.PREDICT, response_model=None, responses={501: {}})
def predict(model_id: str, user: OptionalUser, db: Db) -> None:
    """Not available yet: answers 501."""
    models.read_model(db, model_id, caller_id(user))
    raise NotImplementedYetError(PREDICT_MESSAGE)


@router.post(paths.CLEAR_EXPORTS, response_model=Envelope[IdRecord])
def clear_exports(model_id: str, user: CurrentUser, db: Db) -> dict[str, Any]:
    """Remove a model's exports: there are none on this server, so this only checks the model."""
    models.check_writable(db, model_id, user.user_id)
    return {"success": True, "message": "no exports to clear", "data": {"id": model_id}}
