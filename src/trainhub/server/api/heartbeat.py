"""`POST /v1/agent/heartbeat/models/{id}`: liveness and the agentId handshake.

See docs/protocol/hub-v1.md §5.11 and §16.6.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.protocol.models import AgentRecord, Heartbeat
from trainhub.server.bodies import body_of, json_body_schema
from trainhub.server.deps import CurrentUser, Db, SettingsDep
from trainhub.server.services import training

router = APIRouter(tags=["heartbeat"])
Beat = Annotated[Heartbeat, Depends(body_of(Heartbeat))]


@router.post(
    paths.HEARTBEAT,
    response_model=Envelope[AgentRecord],
    openapi_extra=json_body_schema(Heartbeat),
)
def heartbeat(
    model_id: str, user: CurrentUser, db: Db, settings: SettingsDep, beat: Beat
) -> dict[str, Any]:
    """Record a beat; answer the agent id to send next time (a new one for a new agent)."""
    done = training.record_beat(
        db,
        model_id,
        user.user_id,
        beat,
        default_interval_s=settings.heartbeat_interval_s,
        max_agents=settings.max_agents_per_model,
    )
    agents = done.concurrent_agents
    message = "heartbeat recorded" if agents <= 1 else f"{agents} agents are training this model"
    return {"success": True, "message": message, "data": {"agentId": done.agent_id}}
