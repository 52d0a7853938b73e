"""The response envelope `{"success", "message", "data"}` (docs/protocol/hub-v1.md §2.2)."""

from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """A successful answer: `data` holds the payload (an object, never null)."""

    success: bool = True
    message: str | None = None
    data: T


class CreatedRecord(BaseModel):
    """What a create answers with: the new object's id."""

    id: str


class Page(BaseModel, Generic[T]):
    """A page of a cursor list (docs/protocol/hub-v1.md §5.7)."""

    results: list[T]
    total: int
    lastRecordId: str | None = None


class AgentRecord(BaseModel):
    """What a heartbeat answers with: the agent id the client must send next time."""

    agentId: str
