"""Heartbeats kept in memory: a beat that changes nothing costs no database write.

Each process keeps the agents of the models it hears from (loaded from the database at most once
a second per model, so resets, deletions and finished runs elsewhere are seen within a second).
A beat is written at once when it changes something: a new agent (and the agents it replaces at
the cap), a new state or interval, a model's status (new or failed -> training, training ->
failed), or when the agent's last written beat is older than a quarter of its interval (at most
WRITE_EVERY_S). Other beats only move the agent's last-seen time in memory, and a flush writes
those times every WRITE_EVERY_S in one transaction. So the database is never more than
WRITE_EVERY_S (or a quarter interval) behind, and a hub that restarts has lost at most that much:
a killed trainer still shows offline within two of its intervals, a live one keeps beating.

The cost of a beat does not grow with the number of beats, agents or models: a model keeps at
most `max_agents` agents (docs/protocol/hub-v1.md §7.4), found by id or by name in a dict.
"""

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from anyio import to_thread
from sqlalchemy.exc import IntegrityError

from trainhub.protocol.ids import create_id, is_id
from trainhub.protocol.models import Heartbeat
from trainhub.server.db import agents as queries
from trainhub.server.db import changes, ingest
from trainhub.server.db.agents import Agent
from trainhub.server.db.engine import Database
from trainhub.server.db.owned import KIND
from trainhub.server.db.tables import ModelRow, utcnow
from trainhub.server.errors import ForbiddenError, NotFoundError, ValidationError

logger = logging.getLogger(__name__)
WRITE_EVERY_S = 5.0
RELOAD_AFTER_S = 1.0
MAX_MODELS = 10_000  # models whose agents one process keeps in memory
MIN_INTERVAL_S, MAX_INTERVAL_S = 1.0, 24 * 3600.0


def beat_interval_s(value: float | None, default_s: float) -> float:
    """Return the seconds to the next beat a heartbeat announces, kept within sane bounds."""
    if value is None:
        return default_s
    if not math.isfinite(value):
        raise ValidationError("'interval' must be the number of seconds between beats")
    return min(max(float(value), MIN_INTERVAL_S), MAX_INTERVAL_S)


@dataclass
class _ModelAgents:
    """The agents of one model as this process knows them."""

    access: ingest.ModelAccess
    status: str
    loaded_at: float
    agents: dict[str, Agent] = field(default_factory=dict)
    written: dict[str, datetime] = field(default_factory=dict)  # agent id -> last beat written


class _Unwritten(NamedTuple):
    """A beat only noted in memory: its model (row number, id, owner) and when it came."""

    seq: int
    model_id: str
    owner_id: str
    seen: datetime


@dataclass(frozen=True)
class Beat:
    """What a heartbeat did: the agent id to send next, and how many agents train the model."""

    agent_id: str
    concurrent_agents: int


class HeartbeatBoard:
    """The agents of the models this process hears from, and the beats not written yet."""

    def __init__(self, db: Database, *, max_agents: int, default_interval_s: float) -> None:
        self._db = db
        self._max_agents = max_agents
        self._default_interval_s = default_interval_s
        self._models: dict[str, _ModelAgents] = {}
        self._loading: dict[str, asyncio.Future[_ModelAgents]] = {}
        self._unwritten: dict[str, _Unwritten] = {}  # agent id -> its last beat
        self._flusher: asyncio.Task[None] | None = None

    async def beat(self, model_id: str, user_id: str, beat: Heartbeat) -> Beat:
        """Record a beat of `user_id`'s trainer for a model; return the agent id to send next."""
        interval_s = beat_interval_s(beat.interval, self._default_interval_s)
        known = await self._model(model_id)
        if beat.agentId and beat.agentId not in known.agents and is_id(beat.agentId):
            # another process may have made this agent since this one loaded the model
            known = await self._model(model_id, fresh=True)
        _check_writable(known.access, model_id, user_id)
        now = utcnow()
        name = beat.agent.replace("\x00", "")[:200]  # PostgreSQL text cannot hold NUL
        agent, replaced = self._agent_for(known, beat.agentId, name, interval_s, now)
        changed = (
            replaced
            or agent.id not in known.written
            or agent.state != beat.state
            or agent.interval_s != interval_s
            or (beat.state == "running" and known.status in ("new", "failed"))
            or (beat.state == "failed" and known.status == "training")
            or now - known.written[agent.id] > timedelta(seconds=min(interval_s / 4, WRITE_EVERY_S))
        )
        agent.last_seen, agent.interval_s, agent.state = now, interval_s, beat.state
        if changed:
            known.status = await to_thread.run_sync(
                self._write, model_id, known, agent, replaced, now
            )
            known.written[agent.id] = now
            self._unwritten.pop(agent.id, None)
        else:
            self._unwritten[agent.id] = _Unwritten(
                known.access.seq, model_id, known.access.owner_id, now
            )
            self._schedule_flush()
        running = sum(1 for a in known.agents.values() if a.is_online(now))
        return Beat(agent.id, running)

    def _agent_for(
        self, known: _ModelAgents, agent_id: str | None, name: str, interval_s: float, now: datetime
    ) -> tuple[Agent, list[str]]:
        """Return the agent a beat counts for, and the agents a new one replaces at the cap."""
        if agent_id and agent_id in known.agents:
            return known.agents[agent_id], []
        replaced: list[str] = []
        if len(known.agents) >= self._max_agents:
            # a client that never sends back its agentId is recognised by its name
            same_name = [a for a in known.agents.values() if a.name == name]
            if same_name:
                return max(same_name, key=lambda a: a.last_seen), []
            by_age = sorted(known.agents.values(), key=lambda a: a.last_seen)
            for old in by_age[: len(known.agents) - self._max_agents + 1]:
                replaced.append(old.id)
                del known.agents[old.id]
                known.written.pop(old.id, None)
                self._unwritten.pop(old.id, None)
        agent = Agent(create_id(), name, interval_s, "running", now, now)
        known.agents[agent.id] = agent
        return agent, replaced

    async def _model(self, model_id: str, *, fresh: bool = False) -> _ModelAgents:
        """Return what this process knows of a model's agents, reloaded once a second."""
        known = self._models.get(model_id)
        if known is not None and not fresh and time.monotonic() - known.loaded_at < RELOAD_AFTER_S:
            return known
        if not is_id(model_id):
            raise NotFoundError(KIND[ModelRow], model_id)
        loading = self._loading.get(model_id)
        if loading is None:  # one load per model at a time, however many beats wait for it
            loading = asyncio.ensure_future(self._reload(model_id, known))
            self._loading[model_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(model_id, None))
        return await loading

    async def _reload(self, model_id: str, known: _ModelAgents | None) -> _ModelAgents:
        fresh = await to_thread.run_sync(self._load, model_id)
        if known is not None:  # beats not written yet stay newer than what was loaded
            for agent_id, agent in fresh.agents.items():
                mine = known.agents.get(agent_id)
                if mine is not None and mine.last_seen > agent.last_seen:
                    agent.last_seen = mine.last_seen
        self._models.pop(model_id, None)
        self._models[model_id] = fresh
        while len(self._models) > MAX_MODELS:  # forget the model heard from longest ago
            del self._models[next(iter(self._models))]
        return fresh

    def _load(self, model_id: str) -> _ModelAgents:
        with self._db.reader.connect() as conn:
            models = ingest.models_by_id(conn, [model_id])
            access = models.get(model_id)
            if access is None:
                raise NotFoundError(KIND[ModelRow], model_id)
            agents = queries.load_agents(conn, access.seq)
        known = _ModelAgents(access, access.status, time.monotonic())
        for agent in agents:
            known.agents[agent.id] = agent
            known.written[agent.id] = agent.last_seen
        return known

    def _write(
        self,
        model_id: str,
        known: _ModelAgents,
        agent: Agent,
        replaced: list[str],
        now: datetime,
    ) -> str:
        try:
            with self._db.begin() as conn:
                status = queries.write_beat(
                    conn, known.access.seq, agent, replaced=replaced, now=now
                )
                changes.note(conn, model_id, known.access.owner_id)
                return status
        except IntegrityError as exc:  # the model was deleted for good since it was loaded
            self._models.pop(model_id, None)
            raise NotFoundError(KIND[ModelRow], model_id) from exc

    def forget(self, model_id: str) -> None:
        """Drop what this process knows of a model's agents (it was reset or deleted here)."""
        known = self._models.pop(model_id, None)
        if known is not None:
            for agent_id in known.agents:
                self._unwritten.pop(agent_id, None)

    def _schedule_flush(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(WRITE_EVERY_S)
        try:
            await to_thread.run_sync(self.flush)
        except Exception:  # the next beat schedules another flush; the times are kept
            logger.warning("could not write the last heartbeats", exc_info=True)

    def flush(self) -> None:
        """Write the last-seen times of beats that were only noted in memory."""
        pending, self._unwritten = self._unwritten, {}
        if not pending:
            return
        models: dict[int, datetime] = {}
        for beat in pending.values():
            models[beat.seq] = max(beat.seen, models.get(beat.seq, beat.seen))
        try:
            with self._db.begin() as conn:
                queries.write_seen(conn, {a: beat.seen for a, beat in pending.items()}, models)
                changes.note_many(
                    conn, sorted({(b.model_id, b.owner_id) for b in pending.values()})
                )
        except Exception:
            for agent_id, entry in pending.items():  # keep them for the next flush
                self._unwritten.setdefault(agent_id, entry)
            raise


def _check_writable(access: ingest.ModelAccess, model_id: str, user_id: str) -> None:
    """Raise as owned.load(write=True) would: 404 for another's private model, 403 if public."""
    kind = KIND[ModelRow]
    if access.deleted or (access.owner_id != user_id and not access.public):
        raise NotFoundError(kind, model_id)
    if access.owner_id != user_id:
        raise ForbiddenError(
            f"{kind} {model_id!r} is public but belongs to another user; it is read-only for you"
        )
