"""`POST /v1/agent/heartbeat/models/{id}`: liveness and the agentId handshake.

See docs/protocol/hub-v1.md §5.11, §16.6 and §16.12.
"""

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trainhub.protocol import paths
from trainhub.protocol.envelope import AgentRecord, Envelope
from trainhub.server.bodies import json_body_schema, json_object
from trainhub.server.db import models as queries
from trainhub.server.db import owned
from trainhub.server.db.tables import ModelRow
from trainhub.server.deps import CurrentUser, Db, SettingsDep
from trainhub.server.errors import ValidationError

router = APIRouter(tags=["heartbeat"])
STATES = ("running", "finished", "failed")
MIN_INTERVAL_S, MAX_INTERVAL_S = 1.0, 24 * 3600.0

BEAT_SCHEMA = {
    "type": "object",
    "properties": {
        "agent": {"type": "string"},
        "agentId": {"type": ["string", "null"]},
        "interval": {"type": "number"},
        "state": {"type": "string", "enum": list(STATES)},
    },
}


def _interval(body: dict[str, Any], default_s: float) -> float:
    value = body.get("interval")
    if value is None:
        return default_s
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError("'interval' must be the number of seconds between beats")
    return min(max(float(value), MIN_INTERVAL_S), MAX_INTERVAL_S)


@router.post(
    paths.HEARTBEAT,
    response_model=Envelope[AgentRecord],
    openapi_extra=json_body_schema(BEAT_SCHEMA),
)
def heartbeat(
    model_id: str,
    user: CurrentUser,
    db: Db,
    settings: SettingsDep,
    body: Annotated[dict[str, Any], Depends(json_object)],
) -> dict[str, Any]:
    """Record a beat; answer the agent id to send next time (a new one for a new agent)."""
    agent_id, name = body.get("agentId"), body.get("agent", "")
    if agent_id is not None and not isinstance(agent_id, str):
        raise ValidationError("'agentId' must be a string or null")
    if not isinstance(name, str):
        raise ValidationError("'agent' must be a string naming the training process")
    state = body.get("state", "running")
    if state not in STATES:
        raise ValidationError(f"'state' must be one of {', '.join(STATES)}")
    interval_s = _interval(body, settings.heartbeat_interval_s)
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user.user_id, write=True)
        issued = queries.heartbeat(
            session,
            row,
            agent_id=agent_id,
            name=name,
            interval_s=interval_s,
            state=state,
            max_agents=settings.max_agents_per_model,
        )
        agents = queries.concurrent_agents(session, row)
    message = "heartbeat recorded" if agents <= 1 else f"{agents} agents are training this model"
    return {"success": True, "message": message, "data": {"agentId": issued}}
