"""`POST /model-reset`, outside /v1 like /get-export (docs/protocol/hub-v1.md §5.14)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope, IdRecord
from trainhub.protocol.models import ModelReset
from trainhub.server.bodies import body_of, json_body_schema
from trainhub.server.deps import CurrentUser, Db, Heartbeats, StorageDep
from trainhub.server.services import models

router = APIRouter(tags=["legacy"])


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
    """Return a model to `new`: metrics, checkpoints, weights and exports are removed."""
    models.reset_model(db, storage, heartbeats, body.modelId, user.user_id)
    return {"success": True, "message": "model reset", "data": {"id": body.modelId}}
