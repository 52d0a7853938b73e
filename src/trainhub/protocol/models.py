"""Request and answer bodies about a model's training: heartbeats, reset, export.

("model" always means an ML model.) The model record itself is in records.py, its document in
documents.py, metrics in metrics.py, weights in weights.py.
"""

from typing import Literal

from pydantic import BaseModel, StrictFloat, StrictInt, StrictStr

HeartbeatState = Literal["running", "finished", "failed"]


class Heartbeat(BaseModel):
    """Body of `POST /v1/agent/heartbeat/models/{id}` (docs/protocol/hub-v1.md §5.11).

    `interval` (seconds to the next beat) and `state` are trainhub's additions; the stock
    clients send neither and are assumed to beat every 300 s.
    """

    agent: StrictStr = ""
    agentId: StrictStr | None = None
    interval: StrictFloat | StrictInt | None = None
    state: HeartbeatState = "running"


class AgentRecord(BaseModel):
    """What a heartbeat answers with: the agent id the client must send next time."""

    agentId: str


class ModelReset(BaseModel):
    """Body of `POST /model-reset` (docs/protocol/hub-v1.md §5.14)."""

    modelId: StrictStr
