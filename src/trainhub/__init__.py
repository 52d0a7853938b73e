"""trainhub: a self-hosted hub for model training runs.

This package is the client side: `HUBTrainingSession` for training loops and `HubClient` for
everything else. The server lives in trainhub.server (the `server` extra).
"""

__version__ = "0.1.0"

from trainhub.client.api import HubClient  # after __version__, which client/transport.py reads
from trainhub.client.errors import (
    ApiError,
    ConfigError,
    HubUnreachable,
    NotAuthenticated,
    NotFound,
    TrainhubError,
)
from trainhub.client.session import HUBTrainingSession

__all__ = [
    "ApiError",
    "ConfigError",
    "HUBTrainingSession",
    "HubClient",
    "HubUnreachable",
    "NotAuthenticated",
    "NotFound",
    "TrainhubError",
    "__version__",
]
