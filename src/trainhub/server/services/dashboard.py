"""What the dashboard's pages read: one read transaction per page, live snapshot or chart.

web/ renders what these return; the queries are in db/ (listing, summaries, metrics).
"""

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from trainhub.server.db import console, listing, metrics, owned, platform_runs, resources
from trainhub.server.db import models as model_queries
from trainhub.server.db.engine import Database
from trainhub.server.db.listing import ModelFilters
from trainhub.server.db.metrics import Columns, Value
from trainhub.server.db.models import ModelContext
from trainhub.server.db.summaries import ModelSummary, summarize
from trainhub.server.db.tables import AgentRow, ModelRow, ProjectRow, RunRow
from trainhub.server.errors import NotFoundError
from trainhub.server.liveness import state_of
from trainhub.server.lru import LRUCache


@dataclass(frozen=True)
class ModelList:
    """A page of the models list: summaries, total, cursor, and the user's projects."""

    summaries: list[ModelSummary]
    total: int
    next_cursor: str | None
    projects: list[tuple[str, str]]


def model_list(
    db: Database, user_id: str, filters: ModelFilters, after: str | None, now: datetime
) -> ModelList:
    """Return one page of the models the user may see under `filters`, newest first."""
    with db.read() as session:
        page = listing.list_models(session, user_id, filters, after, now)
        summaries = summarize(session, page.rows, user_id, now)
        projects = listing.user_projects(session, user_id)
    return ModelList(summaries, page.total, page.last_record_id, projects)


def model_list_state(
    db: Database, user_id: str, watched: list[str], filters: ModelFilters, now: datetime
) -> tuple[list[ModelSummary], str | None]:
    """Return the watched models' summaries and the id of the newest model under `filters`."""
    with db.read() as session:
        rows = listing.visible_models(session, user_id, watched)
        newest = listing.list_models(session, user_id, filters, None, now, limit=1).rows
        return summarize(session, rows, user_id, now), newest[0].id if newest else None


@dataclass(frozen=True)
class ModelView:
    """Everything the model page shows of a model."""

    context: ModelContext
    summary: ModelSummary
    latest_epoch: int | None
    latest: dict[str, Value]


def model_view(db: Database, model_id: str, user_id: str, now: datetime) -> ModelView:
    """Return a model as its page shows it to `user_id` (404 when they may not read it)."""
    with db.read() as session:
        row = owned.load(session, ModelRow, model_id, user_id)
        context = model_queries.load_context(session, row, user_id)
        summary = summarize(session, [row], user_id, now)[0]
        latest_epoch, latest = metrics.latest_values(session, row.seq)
    return ModelView(context, summary, latest_epoch, latest)


@dataclass(frozen=True)
class ModelState:
    """What the model page updates live; `context` is None once the model is gone.

    `console` and `run` describe its Platform runs (docs/protocol/platform.md §9.8): how far
    the console goes, and the newest run's state, liveness and live progress bars.
    """

    context: ModelContext | None
    summary: ModelSummary | None
    metrics: dict[str, Any]
    console: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] | None = None


def _run_state(run: RunRow | None, agents: list[AgentRow], now: datetime) -> dict[str, Any] | None:
    if run is None:
        return None
    agent = next((a for a in agents if a.id == run.agent_id), None)
    return {
        "id": run.id,
        "state": run.state,
        "liveness": state_of(agent, now) if agent is not None else "offline",
        "stopRequested": run.cancel_requested_at is not None,
        "progress": list(run.progress.values()) if run.ended_at is None else [],
        "results": run.results is not None,
    }


def model_state(db: Database, model_id: str, user_id: str, now: datetime) -> ModelState:
    """Return the live state of a model page."""
    with db.read() as session:
        try:
            row = owned.load(session, ModelRow, model_id, user_id)
        except NotFoundError:
            return ModelState(None, None, {})
        context = model_queries.load_context(session, row, user_id)
        summary = summarize(session, [row], user_id, now)[0]
        return ModelState(
            context,
            summary,
            metrics.metrics_state(session, row.seq),
            console.console_state(session, row.seq),
            _run_state(platform_runs.latest_run(session, row.seq), context.agents, now),
        )


def check_readable(db: Database, model_id: str, user_id: str) -> None:
    """Raise 404 unless the user may read the model."""
    with db.read() as session:
        owned.load(session, ModelRow, model_id, user_id)


def chart_version(db: Database, model_id: str, user_id: str) -> tuple[int, dict[str, Any]]:
    """Return a readable model's row number and the state (version) of its metrics."""
    with db.read() as session:
        row = owned.load(session, ModelRow, model_id, user_id)
        return row.seq, metrics.metrics_state(session, row.seq)


ENTRY_COST = 64  # values' worth of memory: a key, its version, the dict and lists of a chart


@dataclass(frozen=True)
class HeldColumns:
    """A chart's columns, the version of the metrics they hold, and when all were last read."""

    version: metrics.Version
    columns: Columns
    read_at: float  # time.monotonic() of the last read of every row

    @property
    def size(self) -> int:
        """Its cost in values, plus what an entry costs however small (an empty window too)."""
        return len(self.columns.epochs) * (1 + len(self.columns.series)) + ENTRY_COST


class ColumnCache(LRUCache[tuple[Any, ...], HeldColumns]):
    """The columns of the charts last read, each with the version of the metrics it holds.

    The first request of a chart after a new epoch read and decoded every epoch again (10,000
    rows: most of 60-110 ms). With the columns kept, it reads only the epochs written since
    (docs/decisions/0028-chart-columns-catch-up.md). Bounded by the values it holds (floats of
    about 32 bytes each, list slot included), the least recently used chart going first.
    """

    def __init__(self, max_values: int = 1_000_000, max_entries: int = 512) -> None:
        super().__init__(max_entries, max_cost=max_values, cost=lambda held: held.size)


COLUMNS = ColumnCache()  # this process's chart columns (the key names the database)
# every row is read again this often: a change that the version cannot see (an epoch rewritten
# with an older time by a replica whose clock is behind, decision 0028) shows at the first
# request after this time (web/modelpage.py lets no cached chart outlive it either)
FULL_READ_EVERY_S = 60.0


def _within(epoch: int, first: int | None, last: int | None) -> bool:
    return (first is None or epoch >= first) and (last is None or epoch <= last)


def _caught_up(
    session: Session, model_seq: int, held: HeldColumns, now: metrics.Version
) -> tuple[list[tuple[int, dict[str, Value]]], bool]:
    """Return the rows written since `held` was read, and whether appending them is enough.

    It is not when an epoch the columns hold was rewritten or removed, or a gap filled.
    """
    then = held.version
    if then == now:
        return [], True
    if then.epoch is None:
        return [], False
    rows = metrics.read_changed(session, model_seq, then)
    appended = all(epoch > then.epoch for epoch, _ in rows)
    return rows, appended and then.count + len(rows) == now.count


def chart_columns(
    db: Database, model_seq: int, first: int | None, last: int | None
) -> tuple[dict[str, Any], HeldColumns]:
    """Return a model's metrics between two epochs as columns, with their version.

    Readability is checked before. The version and the rows are read in one snapshot, so the
    version names exactly what the columns hold; the columns read last time are brought up
    to date with the epochs written since, when that is all that changed.
    """
    key = (db.url, model_seq, first, last)
    held = COLUMNS.get(key)
    if held is not None and time.monotonic() - held.read_at > FULL_READ_EVERY_S:
        held = None
    with db.snapshot() as session:
        version = metrics.metrics_version(session, model_seq)
        if held is not None:
            rows, enough = _caught_up(session, model_seq, held, version)
            if enough:
                inside = [(e, values) for e, values in rows if _within(e, first, last)]
                held = HeldColumns(version, metrics.extended(held.columns, inside), held.read_at)
            else:
                held = None
        if held is None:
            columns = metrics.read_columns(session, model_seq, first, last)
            held = HeldColumns(version, columns, time.monotonic())
    COLUMNS.put(key, held)
    return version.state(), held


@dataclass(frozen=True)
class Comparison:
    """Models side by side: their summaries and their newest metric values."""

    summaries: list[ModelSummary]
    latest: dict[str, dict[str, Value]]


def comparison(db: Database, user_id: str, ids: list[str], now: datetime) -> Comparison:
    """Return the chosen models the user may read, with their newest values."""
    with db.read() as session:
        rows = listing.visible_models(session, user_id, ids)
        summaries = summarize(session, rows, user_id, now)
        latest = {row.id: metrics.latest_values(session, row.seq)[1] for row in rows}
    return Comparison(summaries, latest)


def overlay(
    db: Database, user_id: str, ids: list[str], metric: str
) -> tuple[Columns, dict[str, str]]:
    """Return one column per readable model (keyed by id) of `metric`, on the union of epochs."""
    with db.read() as session:
        rows = listing.visible_models(session, user_id, ids)
        per_model = {row.id: metrics.read_columns(session, row.seq) for row in rows}
    epochs = sorted({e for columns in per_model.values() for e in columns.epochs})
    merged = Columns(epochs=epochs)
    for model_id, columns in per_model.items():
        by_epoch = dict(zip(columns.epochs, columns.series.get(metric, []), strict=False))
        merged.series[model_id] = [by_epoch.get(e) for e in epochs]
    return merged, {row.id: row.name for row in rows}


@dataclass(frozen=True)
class ProjectView:
    """A project page: the project and one page of its models."""

    project: ProjectRow
    summaries: list[ModelSummary]
    total: int
    next_cursor: str | None


def project_view(
    db: Database, project_id: str, user_id: str, after: str | None, now: datetime
) -> ProjectView:
    """Return a project the user may read and a page of their models in it."""
    with db.read() as session:
        row = owned.load(session, ProjectRow, project_id, user_id)
        page = listing.list_models(session, user_id, ModelFilters(project_id=row.id), after, now)
        summaries = summarize(session, page.rows, user_id, now)
    return ProjectView(row, summaries, page.total, page.last_record_id)


def model_counts(db: Database, project_ids: list[str]) -> dict[str, int]:
    """Return how many live models each project holds."""
    with db.read() as session:
        return resources.model_counts(session, project_ids)
