"""Live changes: what the dashboard's live streams are told changed (db/changes.py).

Operations note their changes themselves, in their own transactions; this module holds what
is done to the changes as a whole.
"""

from datetime import timedelta

from trainhub.server.db import changes
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import utcnow

KEEP_CHANGES = timedelta(hours=1)  # far longer than any stream waits between two reads


def prune_changes(db: Database) -> int:
    """Delete the changes older than KEEP_CHANGES; return how many."""
    with db.write() as session:
        return changes.prune(session, utcnow() - KEEP_CHANGES)
