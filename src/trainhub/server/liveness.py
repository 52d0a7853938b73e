"""When a trainer counts as online: it beat within two of its own intervals, and is running.

The stock clients beat every 300 s and do not say so; ours beat every 30 s and say it in each
beat, so each agent is judged by its own interval (docs/protocol/hub-v1.md §7.4).
"""

from datetime import datetime, timedelta

from trainhub.server.db.tables import AgentRow

LIVENESS_INTERVALS = 2


def is_online(agent: AgentRow, now: datetime) -> bool:
    """Tell whether an agent beat within two of its intervals and has not said it finished."""
    window = timedelta(seconds=agent.interval_s * LIVENESS_INTERVALS)
    return agent.state == "running" and now - agent.last_seen <= window
