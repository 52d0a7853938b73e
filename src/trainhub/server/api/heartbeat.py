"""`POST /v1/agent/heartbeat/models/{id}`: liveness and the agentId handshake.

See docs/protocol/hub-v1.md §5.11 and §16.6. A trainer calls this every beat, so the route is
lean: one dependency (the caller), the body read in the route, an answer encoded by orjson.
"""

from fastapi import APIRouter, Request, Response

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.protocol.models import AgentRecord, Heartbeat
from trainhub.server.bodies import json_body_schema, read_body
from trainhub.server.deps import CurrentUser
from trainhub.server.leanroutes import lean
from trainhub.server.responses import fast_json
from trainhub.server.state import request_hub

router = APIRouter(tags=["heartbeat"])


@router.post(
    paths.HEARTBEAT,
    response_model=Envelope[AgentRecord],
    openapi_extra=json_body_schema(Heartbeat),
)
@lean
async def heartbeat(
    model_id: str, user: CurrentUser, request: Request, response: Response
) -> Response:
    """Record a beat; answer the agent id to send next time (a new one for a new agent)."""
    beat = await read_body(request, Heartbeat)
    done = await request_hub(request).heartbeats.beat(model_id, user.user_id, beat)
    agents = done.concurrent_agents
    message = "heartbeat recorded" if agents <= 1 else f"{agents} agents are training this model"
    body = {"success": True, "message": message, "data": {"agentId": done.agent_id}}
    return fast_json(body, response.headers)
