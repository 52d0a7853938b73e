"""trainhub: a self-hosted hub for model training runs.

This package is the client side: `HUBTrainingSession` for training loops and `HubClient` for
everything else. The server lives in trainhub.server (the `server` extra).

The names below are loaded on first use (PEP 562), so importing a subpackage such as
trainhub.server or trainhub.protocol loads no client module, no httpx and no exit hook.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from trainhub._version import __version__

if TYPE_CHECKING:
    from trainhub.client.api import HubClient
    from trainhub.client.errors import (
        ApiError,
        ConfigError,
        HubUnreachable,
        NotAuthenticated,
        NotFound,
        TrainhubError,
    )
    from trainhub.client.session import HUBTrainingSession

_LAZY = {
    "ApiError": "trainhub.client.errors",
    "ConfigError": "trainhub.client.errors",
    "HUBTrainingSession": "trainhub.client.session",
    "HubClient": "trainhub.client.api",
    "HubUnreachable": "trainhub.client.errors",
    "NotAuthenticated": "trainhub.client.errors",
    "NotFound": "trainhub.client.errors",
    "TrainhubError": "trainhub.client.errors",
}

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


def __getattr__(name: str) -> Any:
    """Import a public client name the first time it is asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainhub' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
