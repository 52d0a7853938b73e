"""X-Forwarded-For is trusted only from the proxies named by --forwarded-allow-ips.

Callers without a key are rate limited per client address. uvicorn used to trust proxy headers
from any local process, so a caller on the same machine could pick the address it is counted
as. By default no proxy is trusted: a request's address is the socket's, whatever it claims.
"""

from pathlib import Path

import httpx
import pytest

from tests.servers import start_server

pytestmark = pytest.mark.e2e
ONE_CALLER_PER_MINUTE = {"TRAINHUB_ANONYMOUS_RATE_LIMIT": "3/minute"}


def anonymous_statuses(url: str, forwarded_for: list[str]) -> list[int]:
    """Send one anonymous request per address, each claiming to be forwarded for it."""
    return [
        httpx.get(
            f"{url}/v1/datasets", params={"public": "true"}, headers={"X-Forwarded-For": address}
        ).status_code
        for address in forwarded_for
    ]


def test_by_default_a_forwarded_for_header_is_ignored(tmp_path: Path) -> None:
    addresses = [f"203.0.113.{n}" for n in range(5)]
    with start_server(tmp_path, extra_env=ONE_CALLER_PER_MINUTE) as hub:
        statuses = anonymous_statuses(hub.url, addresses)
    # all five come from 127.0.0.1: the fourth is over the limit of three
    assert statuses == [200, 200, 200, 429, 429], hub.log()


def test_a_trusted_proxy_s_forwarded_for_header_names_the_client(tmp_path: Path) -> None:
    addresses = [f"203.0.113.{n}" for n in range(5)] + ["203.0.113.0"] * 3
    with start_server(
        tmp_path, "--forwarded-allow-ips", "127.0.0.1", extra_env=ONE_CALLER_PER_MINUTE
    ) as hub:
        statuses = anonymous_statuses(hub.url, addresses)
    # five clients behind the proxy get their own limits; the first one runs out after three
    assert statuses == [200] * 5 + [200, 200, 429], hub.log()
