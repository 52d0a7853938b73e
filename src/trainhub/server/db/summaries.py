"""What the dashboard shows of a model in a list row, a page header and a live update.

`summarize` builds the summaries of a page of models with a fixed number of queries (projects,
datasets, agents, best metric), whatever the page size.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainhub.server.db import owned
from trainhub.server.db.tables import AgentRow, DatasetRow, ModelRow, ProjectRow, iso
from trainhub.server.liveness import state_changes_at, state_of


@dataclass(frozen=True)
class ModelSummary:
    """One model as the dashboard shows it."""

    id: str
    name: str
    owner_id: str
    public: bool
    project: tuple[str, str] | None  # (id, name)
    dataset: str | None
    status: str  # new, online, stale, offline, trained, cancelled, failed
    label: str
    epoch_text: str
    best: float | None
    last_heartbeat: datetime | None
    status_changes_at: datetime | None = None  # when `status` changes if its trainers go quiet

    def event(self) -> dict[str, Any]:
        """Return the small JSON a live update carries."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "label": self.label,
            "epoch": self.epoch_text,
            "best": None if self.best is None else f"{self.best:.4g}",
            "lastHeartbeat": iso(self.last_heartbeat),
        }


def planned_epochs(row: ModelRow) -> int | None:
    """Return the number of epochs the model's config asks for, if any."""
    config = row.doc.get("config")
    epochs = config.get("epochs") if isinstance(config, dict) else None
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def epoch_text(row: ModelRow) -> str:
    """Return "epoch x of y" (x counts from 1), or what is known of it."""
    total = planned_epochs(row)
    if row.last_epoch is None:
        return f"0 of {total}" if total else "-"
    return f"{row.last_epoch + 1} of {total}" if total else str(row.last_epoch + 1)


def live_status(row: ModelRow, agents: list[AgentRow], now: datetime) -> str:
    """Return new, online, stale, offline, trained, cancelled or failed.

    Training is online when any of its agents is, stale when a silent Platform run may still
    speak again (docs/protocol/platform.md §9.4), offline otherwise.
    """
    if row.status != "training":
        return row.status
    states = {state_of(a, now) for a in agents}
    return next((s for s in ("online", "stale") if s in states), "offline")


def _changes_at(row: ModelRow, agents: list[AgentRow], now: datetime) -> datetime | None:
    """Return the first time a training model's agents change state by silence alone."""
    if row.status != "training":
        return None
    times = [t for t in (state_changes_at(a, now) for a in agents) if t is not None]
    return min(times, default=None)


LABELS = {
    "online": "training, online",
    "stale": "training, silent",
    "offline": "training, offline",
}


def status_label(status: str) -> str:
    """Return the words shown for a status (pages add "since <last heartbeat>" when offline)."""
    return LABELS.get(status, status)


def _names(
    session: Session,
    table: type[ProjectRow] | type[DatasetRow],
    ids: set[str],
    reader_id: str | None,
) -> dict[str, str]:
    """Return the names of the objects among `ids` that the reader may read now."""
    if not ids:
        return {}
    rows = session.execute(
        select(table.id, table.name).where(table.id.in_(ids), owned.readable_by(table, reader_id))
    )
    return {row[0]: row[1] for row in rows}


def _agents(session: Session, seqs: list[int]) -> dict[int, list[AgentRow]]:
    found: dict[int, list[AgentRow]] = {seq: [] for seq in seqs}
    if seqs:
        for agent in session.scalars(select(AgentRow).where(AgentRow.model_seq.in_(seqs))):
            found[agent.model_seq].append(agent)
    return found


def summarize(
    session: Session, rows: list[ModelRow], reader_id: str | None, now: datetime
) -> list[ModelSummary]:
    """Return the summaries of `rows`, in order, naming only what `reader_id` may read."""
    seqs = [r.seq for r in rows]
    projects = _names(session, ProjectRow, {r.project_id for r in rows if r.project_id}, reader_id)
    datasets = _names(session, DatasetRow, {r.dataset_id for r in rows if r.dataset_id}, reader_id)
    agents = _agents(session, seqs)
    summaries = []
    for row in rows:
        status = live_status(row, agents[row.seq], now)
        project = (row.project_id, projects[row.project_id]) if row.project_id in projects else None
        named = row.doc.get("dataset")
        dataset = datasets.get(row.dataset_id or "") or (
            str(named.get("name")) if isinstance(named, dict) and named.get("name") else None
        )
        summaries.append(
            ModelSummary(
                id=row.id,
                name=row.name,
                owner_id=row.owner_id,
                public=row.public,
                project=project,
                dataset=dataset,
                status=status,
                label=status_label(status),
                epoch_text=epoch_text(row),
                best=row.best_map if row.best_map is not None else row.best_metric,
                last_heartbeat=row.last_heartbeat_at,
                status_changes_at=_changes_at(row, agents[row.seq], now),
            )
        )
    return summaries
