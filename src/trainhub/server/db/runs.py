"""The query behind the active-runs gauge of /metrics: models whose trainer is online now."""

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainhub.server.db.tables import AgentRow

LIVENESS_INTERVALS = 2  # as records.is_online: online while beats arrive within two intervals
LONGEST_WINDOW = timedelta(days=1)  # no client beats less often than this


def count_active_runs(session: Session, now: datetime) -> int:
    """Return how many models have a running agent that beat within two of its intervals."""
    rows = session.execute(
        select(AgentRow.model_seq, AgentRow.last_seen, AgentRow.interval_s).where(
            AgentRow.state == "running", AgentRow.last_seen >= now - LONGEST_WINDOW
        )
    )
    return len(
        {
            model_seq
            for model_seq, last_seen, interval_s in rows
            if now - last_seen <= timedelta(seconds=interval_s * LIVENESS_INTERVALS)
        }
    )
