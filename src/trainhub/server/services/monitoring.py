"""What /metrics reads from the database when it is scraped."""

from trainhub.server.db.engine import Database
from trainhub.server.db.runs import count_active_runs
from trainhub.server.db.tables import utcnow


def active_runs(db: Database) -> int:
    """Return how many models have a trainer online now."""
    with db.read() as session:
        return count_active_runs(session, utcnow())
