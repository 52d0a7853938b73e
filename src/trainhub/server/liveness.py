"""When a trainer counts as online, stale or offline.

A HUB trainer is online while it beats within two of its own intervals (the stock clients beat
every 300 s and do not say so; ours beat every 30 s and say it in each beat), so each agent is
judged by its own interval (docs/protocol/hub-v1.md §7.4).

A Platform run sends no heartbeat at all (docs/protocol/platform.md §9.4): its interval is the
silence it may keep, derived from its own epoch times, and past one interval it is stale, past
two offline. Any event makes it online again.
"""

import math
from datetime import datetime, timedelta

from trainhub.server.db.tables import AgentRow

LIVENESS_INTERVALS = 2
SILENT_EPOCHS = 2  # a Platform run is stale after this many of its longest epochs without a word
SILENCE_STEP_S = 30.0  # silences are rounded up to this, so few distinct intervals exist


def window_of(agent: AgentRow) -> timedelta:
    """Return how long after its last word an agent still counts as online."""
    intervals = 1 if agent.protocol == "platform" else LIVENESS_INTERVALS
    return timedelta(seconds=agent.interval_s * intervals)


def state_of(agent: AgentRow, now: datetime) -> str:
    """Return "online", "stale" (a silent Platform run) or "offline" for an agent."""
    if agent.state != "running":
        return "offline"
    silence = now - agent.last_seen
    if silence <= window_of(agent):
        return "online"
    stale_until = timedelta(seconds=agent.interval_s * LIVENESS_INTERVALS)
    if agent.protocol == "platform" and silence <= stale_until:
        return "stale"
    return "offline"


def state_changes_at(agent: AgentRow, now: datetime) -> datetime | None:
    """Return when the agent's state changes if it says nothing more; None if it never does.

    A live page reads again then, so a trainer that goes quiet shows as such on time.
    """
    if agent.state != "running":
        return None
    online_until = agent.last_seen + window_of(agent)
    if now <= online_until:
        return online_until
    stale_until = agent.last_seen + timedelta(seconds=agent.interval_s * LIVENESS_INTERVALS)
    if agent.protocol == "platform" and now <= stale_until:
        return stale_until
    return None


def is_online(agent: AgentRow, now: datetime) -> bool:
    """Tell whether an agent spoke recently enough and has not said it finished."""
    return state_of(agent, now) == "online"


def platform_silence_s(
    longest_epoch_s: float | None, *, min_s: float, first_epoch_s: float
) -> float:
    """Return the silence a Platform run may keep before it is stale.

    Twice its longest epoch so far, at least `min_s`; before its first epoch ended (its epoch
    time unknown), `first_epoch_s`. Rounded up to SILENCE_STEP_S.
    """
    if longest_epoch_s is None:
        wanted = max(min_s, first_epoch_s)
    else:
        wanted = max(min_s, SILENT_EPOCHS * longest_epoch_s)
    if wanted <= SILENCE_STEP_S:
        return wanted
    return math.ceil(wanted / SILENCE_STEP_S) * SILENCE_STEP_S
