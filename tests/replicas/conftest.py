"""The two-replica tier: replicas A and B of one hub on PostgreSQL, SeaweedFS and Redis.

Every test in this folder is marked `replicas` and `e2e` (`pytest -m replicas` runs the tier).
`replicas` is one stack per test session (so per pytest-xdist worker), made the first time a test
asks for it: a private PostgreSQL database (tests/postgres.py), a bucket on the session's
SeaweedFS, the machine's Redis, and two `trainhub server` processes (tests/replicas/stack.py).
Tests that must start replicas themselves, or stop one, use `start_replicas` on a database and a
bucket of their own.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import POSTGRES_URL, postgres_databases
from tests.replicas.stack import Replicas, start_replicas
from tests.s3 import create_bucket
from tests.seaweed import SeaweedServer

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder `replicas` and `e2e`."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.replicas)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedServer
) -> Iterator[Replicas]:
    """Replicas A and B of one hub, shared by the tests of this session that ask for them."""
    if POSTGRES_URL is None:
        pytest.skip("set TRAINHUB_TEST_DATABASE_URL to a PostgreSQL server (make test does)")
    with postgres_databases(POSTGRES_URL) as make_database:
        bucket = create_bucket(seaweed.endpoint_url)
        folder = tmp_path_factory.mktemp("replicas")
        with start_replicas(folder, make_database(), bucket) as pair:
            yield pair
