"""Fixtures of the fault tests: a hub whose every request goes through a `FaultProxy`.

test_faults.py and test_network_faults.py each get one such hub per module (`proxied`), shared by
their tests that do not kill the hub; `hub` resets the proxy to plain forwarding after each test.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from tests.e2e.faults import FaultProxy, create_model
from tests.servers import RunningServer, start_server


@dataclass
class ProxiedHub:
    """A running hub whose public URL is the proxy's: every request and link goes through it."""

    server: RunningServer
    proxy: FaultProxy

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def key(self) -> str:
        return self.server.keys["alice"]

    def model(self, name: str) -> str:
        return create_model(self.url, self.key, name)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedHub]:
    proxy = FaultProxy(target_port=0).start()
    try:
        with start_server(tmp_path_factory.mktemp("faults"), "--public-url", proxy.url) as server:
            proxy.target_port = int(urlsplit(server.url).port or 0)
            yield ProxiedHub(server, proxy)
    finally:
        proxy.close()


@pytest.fixture
def hub(proxied: ProxiedHub) -> Iterator[ProxiedHub]:
    """The shared hub, its proxy reset to plain forwarding after the test."""
    yield proxied
    proxied.proxy.reset()
