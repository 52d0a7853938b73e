"""Queries of Platform runs: create, find, note an event, and the agent that stands for a run.

A run's liveness is an AgentRow of protocol "platform": its `last_seen` is the run's newest
event and its `interval_s` the silence after which the run counts as stale, so the pages and
records judge it with the same code as a HUB heartbeat (docs/protocol/platform.md §9.4).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainhub.protocol.ids import create_id
from trainhub.server.db import changes
from trainhub.server.db.tables import AgentRow, ModelRow, RunRow

MAX_RUNS_LISTED = 50


def create_run(
    session: Session,
    row: ModelRow,
    *,
    user_id: str,
    fingerprint: str,
    agent_name: str,
    interval_s: float,
    now: datetime,
    planned_epochs: int | None = None,
    environment: dict[str, Any] | None = None,
    train_args: dict[str, Any] | None = None,
) -> RunRow:
    """Start a run of `row` and the agent that tracks its liveness."""
    agent = AgentRow(
        id=create_id(),
        model_seq=row.seq,
        name=agent_name.replace("\x00", "")[:200],
        protocol="platform",
        interval_s=interval_s,
        state="running",
        first_seen=now,
        last_seen=now,
    )
    session.add(agent)
    run = RunRow(
        model_seq=row.seq,
        user_id=user_id,
        agent_id=agent.id,
        fingerprint=fingerprint,
        planned_epochs=planned_epochs,
        environment=environment or {},
        train_args=train_args or {},
        started_at=now,
        last_event_at=now,
    )
    session.add(run)
    session.flush()
    row.last_heartbeat_at = now
    return run


def find_retried_start(session: Session, fingerprint: str, since: datetime) -> RunRow | None:
    """Return the run a `training_started` with this fingerprint began after `since`, if any."""
    return session.scalars(
        select(RunRow)
        .where(RunRow.fingerprint == fingerprint, RunRow.started_at >= since)
        .order_by(RunRow.id.desc())
        .limit(1)
    ).first()


def latest_run(session: Session, model_seq: int) -> RunRow | None:
    """Return the newest run of a model."""
    return session.scalars(
        select(RunRow).where(RunRow.model_seq == model_seq).order_by(RunRow.id.desc()).limit(1)
    ).first()


def find_run(session: Session, model_seq: int, run_id: int) -> RunRow | None:
    """Return the run `run_id` if it belongs to the model."""
    run = session.get(RunRow, run_id)
    return run if run is not None and run.model_seq == model_seq else None


def list_runs(session: Session, model_seq: int) -> list[RunRow]:
    """Return a model's runs, oldest first (at most the newest MAX_RUNS_LISTED)."""
    newest = list(
        session.scalars(
            select(RunRow)
            .where(RunRow.model_seq == model_seq)
            .order_by(RunRow.id.desc())
            .limit(MAX_RUNS_LISTED)
        )
    )
    return newest[::-1]


def agents_by_id(session: Session, agent_ids: list[str]) -> dict[str, AgentRow]:
    """Return the agents among `agent_ids` that exist, by id."""
    if not agent_ids:
        return {}
    return {a.id: a for a in session.scalars(select(AgentRow).where(AgentRow.id.in_(agent_ids)))}


def agent_of(session: Session, run: RunRow, now: datetime) -> AgentRow:
    """Return the run's agent; a new one if it was removed (the agents of a model are capped)."""
    agent = session.get(AgentRow, run.agent_id)
    if agent is not None:
        return agent
    agent = AgentRow(
        id=create_id(),
        model_seq=run.model_seq,
        name=f"run {run.id}",
        protocol="platform",
        interval_s=60.0,
        state="running" if run.ended_at is None else "finished",
        first_seen=run.started_at,
        last_seen=now,
    )
    session.add(agent)
    run.agent_id = agent.id
    return agent


def note_event(
    session: Session, row: ModelRow, run: RunRow, now: datetime, interval_s: float
) -> None:
    """Record that `run` was heard from at `now`; a silent run that speaks again is live again.

    Every Platform event ends here, so this is where the model's page is told it changed.
    """
    run.last_event_at = max(run.last_event_at, now)
    agent = agent_of(session, run, now)
    agent.last_seen = max(agent.last_seen, now)
    agent.interval_s = interval_s
    agent.state = "running" if run.ended_at is None else "finished"
    row.last_heartbeat_at = now
    changes.note_model(session, row)


def note_epoch(run: RunRow, epoch: int, now: datetime) -> None:
    """Measure the run's epochs: the time since its previous epoch (or its start) is one epoch."""
    if run.last_epoch is not None and epoch <= run.last_epoch:
        return  # a re-sent or late epoch says nothing about how long epochs take
    since = run.last_epoch_at or run.started_at
    took_s = (now - since).total_seconds()
    if took_s > 0:
        run.longest_epoch_s = max(run.longest_epoch_s or 0.0, took_s)
    run.last_epoch, run.last_epoch_at = epoch, now


def end_run(session: Session, run: RunRow, state: str, now: datetime) -> None:
    """Mark a run as ended (completed or cancelled); its agent is finished."""
    run.state, run.ended_at = state, run.ended_at or now
    agent = agent_of(session, run, now)
    agent.state = "finished"
