"""Queries of the dashboard's models list: filters by project and status over `owned.list_page`.

Pages come from the same cursor query as `GET /v1/models` (newest first, keyed by the integer
sequence), so a list stays fast with thousands of models. Online and offline are decided in SQL:
an agent is online while it beat within two of its own intervals, and the few distinct intervals
in use each become one comparison, which works the same on SQLite and PostgreSQL.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.orm import Session

from trainhub.protocol.ids import is_id
from trainhub.server.db import owned
from trainhub.server.db.tables import AgentRow, ModelRow, ProjectRow
from trainhub.server.liveness import LIVENESS_INTERVALS

STATUSES = ("new", "online", "offline", "trained", "cancelled", "failed")
SCOPES = ("mine", "public")
PAGE_SIZE = 50


@dataclass(frozen=True)
class ModelFilters:
    """What the models list is narrowed to."""

    project_id: str | None = None
    status: str | None = None
    scope: str = "mine"

    @classmethod
    def parse(cls, project: str | None, status: str | None, scope: str | None) -> "ModelFilters":
        """Return filters from query parameters; unknown values mean "no filter"."""
        return cls(
            project_id=project if project and is_id(project) else None,
            status=status if status in STATUSES else None,
            scope=scope if scope in SCOPES else "mine",
        )

    def query(self) -> dict[str, str]:
        """Return the filters as query parameters (only those set)."""
        values = {"project": self.project_id, "status": self.status}
        if self.scope != "mine":
            values["scope"] = self.scope
        return {k: v for k, v in values.items() if v}


def online_clause(session: Session, now: datetime) -> ColumnElement[bool]:
    """Return SQL that is true for models with an agent that is online at `now`.

    A HUB agent is online for two of its intervals, a Platform run for one (it is stale after
    that, which the list filters as offline).
    """
    kinds = session.execute(
        select(AgentRow.protocol, AgentRow.interval_s).where(AgentRow.state == "running").distinct()
    ).all()
    recent = [
        and_(
            AgentRow.protocol == protocol,
            AgentRow.interval_s == interval,
            AgentRow.last_seen
            >= now
            - timedelta(seconds=interval * (1 if protocol == "platform" else LIVENESS_INTERVALS)),
        )
        for protocol, interval in kinds
    ]
    if not recent:
        return false()
    return exists().where(
        AgentRow.model_seq == ModelRow.seq, AgentRow.state == "running", or_(*recent)
    )


def filter_clause(
    session: Session, filters: ModelFilters, now: datetime
) -> ColumnElement[bool] | None:
    """Return the SQL condition of `filters`, None when nothing is filtered."""
    conditions: list[ColumnElement[bool]] = []
    if filters.project_id:
        conditions.append(ModelRow.project_id == filters.project_id)
    if filters.status in ("online", "offline"):
        online = online_clause(session, now)
        conditions.append(ModelRow.status == "training")
        conditions.append(online if filters.status == "online" else ~online)
    elif filters.status:
        conditions.append(ModelRow.status == filters.status)
    return and_(*conditions) if conditions else None


def list_models(
    session: Session,
    user_id: str,
    filters: ModelFilters,
    after: str | None,
    now: datetime,
    limit: int = PAGE_SIZE,
) -> owned.PageOf:
    """Return one page of the models the user may see under `filters`, newest first."""
    return owned.list_page(
        session,
        ModelRow,
        user_id,
        limit=limit,
        last_doc_id=after if after and is_id(after) else None,
        public=filters.scope == "public",
        extra=filter_clause(session, filters, now),
    )


def user_projects(session: Session, user_id: str, limit: int = 500) -> list[tuple[str, str]]:
    """Return (id, name) of the user's projects, for the project filter and pickers."""
    rows = session.execute(
        select(ProjectRow.id, ProjectRow.name)
        .where(ProjectRow.owner_id == user_id, ProjectRow.deleted_at.is_(None))
        .order_by(ProjectRow.name)
        .limit(limit)
    )
    return [(project_id, name) for project_id, name in rows]


def visible_models(session: Session, user_id: str, ids: list[str]) -> list[ModelRow]:
    """Return the models among `ids` that the user may read (own or public), in `ids` order."""
    wanted = [i for i in ids if is_id(i)]
    if not wanted:
        return []
    rows = session.scalars(
        select(ModelRow).where(
            ModelRow.id.in_(wanted),
            ModelRow.deleted_at.is_(None),
            (ModelRow.owner_id == user_id) | ModelRow.public.is_(True),
        )
    )
    by_id = {r.id: r for r in rows}
    return [by_id[i] for i in wanted if i in by_id]
