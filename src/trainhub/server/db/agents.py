"""Queries of agents (training processes that beat for a model), for services/heartbeats.py.

Core SQL, statements built once: a beat that changes something is written by `write_beat` (one
transaction: the agent, the agents it replaced, the model's status and last heartbeat); the
last-seen times of beats that change nothing are written in batches by `write_seen`.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, case, delete, insert, select, update

from trainhub.server.db.tables import AgentRow, ModelRow
from trainhub.server.liveness import LIVENESS_INTERVALS


@dataclass
class Agent:
    """An agent as a process keeps it in memory (a plain object: ORM attributes cost per read)."""

    id: str
    name: str
    interval_s: float
    state: str
    first_seen: datetime
    last_seen: datetime

    def is_online(self, now: datetime) -> bool:
        """Tell whether it beat within two of its intervals and has not said it finished."""
        window = timedelta(seconds=self.interval_s * LIVENESS_INTERVALS)
        return self.state == "running" and now - self.last_seen <= window


_AGENTS = select(
    AgentRow.id,
    AgentRow.name,
    AgentRow.interval_s,
    AgentRow.state,
    AgentRow.first_seen,
    AgentRow.last_seen,
).where(AgentRow.model_seq == bindparam("model_seq_"))
_UPDATE_AGENT = (
    update(AgentRow)
    .where(AgentRow.id == bindparam("agent_id"))
    .values(last_seen=bindparam("seen"), interval_s=bindparam("interval"), state=bindparam("st"))
)
_SEEN = (
    update(AgentRow)
    .where(AgentRow.id == bindparam("agent_id"), AgentRow.last_seen < bindparam("seen"))
    .values(last_seen=bindparam("seen"))
)
_MODEL_SEEN = (
    update(ModelRow)
    .where(
        ModelRow.seq == bindparam("row_seq"),
        ModelRow.last_heartbeat_at.is_(None) | (ModelRow.last_heartbeat_at < bindparam("seen")),
    )
    .values(last_heartbeat_at=bindparam("seen"))
)
_MODEL_BEAT = (
    update(ModelRow)
    .where(ModelRow.seq == bindparam("row_seq"))
    .values(
        last_heartbeat_at=bindparam("seen"),
        status=case(
            (
                (bindparam("st") == "running") & ModelRow.status.in_(("new", "failed")),
                "training",
            ),
            ((bindparam("st") == "failed") & (ModelRow.status == "training"), "failed"),
            else_=ModelRow.status,
        ),
    )
    .returning(ModelRow.status)
)


def load_agents(conn: Connection, model_seq: int) -> list[Agent]:
    """Return every agent of a model (at most max_agents_per_model of them)."""
    rows = conn.execute(_AGENTS, {"model_seq_": model_seq})
    return [Agent(r.id, r.name, r.interval_s, r.state, r.first_seen, r.last_seen) for r in rows]


def write_beat(
    conn: Connection,
    model_seq: int,
    agent: Agent,
    *,
    replaced: Iterable[str],
    now: datetime,
) -> str:
    """Store an agent's beat (creating the agent if needed) and its effect on the model.

    Return the model's status after the beat: a running beat starts a new or failed model's
    training, a failed beat fails a model in training.
    """
    evicted = list(replaced)
    if evicted:
        conn.execute(delete(AgentRow).where(AgentRow.id.in_(evicted)))
    values = {"seen": agent.last_seen, "interval": agent.interval_s, "st": agent.state}
    if conn.execute(_UPDATE_AGENT, {"agent_id": agent.id, **values}).rowcount == 0:
        conn.execute(
            insert(AgentRow).values(
                id=agent.id,
                model_seq=model_seq,
                name=agent.name,
                interval_s=agent.interval_s,
                state=agent.state,
                first_seen=agent.first_seen,
                last_seen=agent.last_seen,
            )
        )
    beat = {"row_seq": model_seq, "seen": now, "st": agent.state}
    return str(conn.execute(_MODEL_BEAT, beat).scalar_one_or_none() or "")


def write_seen(conn: Connection, agents: dict[str, datetime], models: dict[int, datetime]) -> None:
    """Move last-seen times forward: of agents by id, and of models' last heartbeat by seq."""
    if agents:
        conn.execute(_SEEN, [{"agent_id": a, "seen": s} for a, s in agents.items()])
    if models:
        conn.execute(_MODEL_SEEN, [{"row_seq": m, "seen": s} for m, s in models.items()])
