"""Fixtures: a fresh server app per test (own SQLite file or PostgreSQL schema, own storage folder).

Integration tests run on SQLite, and on PostgreSQL too when TRAINHUB_TEST_DATABASE_URL is set
(`make test` sets it). TRAINHUB_* and AWS_* variables are stripped so a developer's settings never
leak in. Tests of S3 storage ask for `s3_bucket`: a bucket of their own on one SeaweedFS server
per session (tests/seaweed.py), with AWS_* variables that point boto3 at it; `storage_kind` runs a
test on the local folder and on SeaweedFS.

`make test` runs the suite on pytest-xdist workers: each worker is a session of its own (its own
SeaweedFS server, its own temp dirs, its own block of ports: tests/servers.py), and tests marked
`serial` run while no worker runs a test that is not (`pytest_runtest_protocol` below).
"""

import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, text

from tests.factories import Users, create_users
from tests.postgres import (
    POSTGRES_URL,
    MigratedSchemas,
    postgres_databases,
    schema_pool,
    schema_url,
)
from tests.s3 import Bucket, aws_env, create_bucket, start_moto
from tests.seaweed import SeaweedServer, start_seaweed
from tests.servers import lay_migrated_sqlite
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.settings import Settings
from trainhub.server.state import hub_state

DATABASES = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
TESTS = Path(__file__).parent
# The order in which `make test` hands test modules to its workers (after the `serial` ones): the
# folders of long tests first, so that the many short in-process tests even out the end.
FOLDER_ORDER = ("compat", "exports", "e2e", "replicas", "security", "integration", "unit")
# The modules of `serial` tests, in three groups of about the same length (seconds of one run at
# -n 3, 2026-12-05, PostgreSQL on). `make test`'s three workers take one group each, whole
# (`pytest_xdist_make_scheduler`), and the serial phase ends when the longest group does. A
# module missing here is a group of its own, after them.
SERIAL_GROUPS = (
    ("e2e/test_faults.py", "e2e/test_overload.py"),  # 28 + 18 s
    ("e2e/test_dashboard_exports.py", "e2e/test_dashboard.py"),  # 23 + 20 s
    ("e2e/test_network_faults.py", "e2e/test_slow_clients.py"),  # 36 + 6 s
)
SERIAL_MODULES = [module for group in SERIAL_GROUPS for module in group]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("TRAINHUB_", "AWS_")) or name in ("HUB_API_KEY", "ULTRALYTICS_HUB_API"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an S3-compatible server (moto) that runs for the rest of the session."""
    with start_moto(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """SeaweedFS (`weed mini`), the S3 server of the storage tests, for the rest of the session."""
    with start_seaweed(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_endpoint(seaweed: SeaweedServer) -> str:
    """The URL of the real S3 server the tests use (SeaweedFS)."""
    return seaweed.endpoint_url


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A fresh bucket; AWS_* variables point boto3 (and so S3Storage) at its server."""
    for name, value in aws_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    return create_bucket(s3_endpoint)


STORAGE_KINDS = ["local", "seaweedfs"]


@pytest.fixture(params=STORAGE_KINDS)
def storage_kind(request: pytest.FixtureRequest) -> str:
    """Where a test's blobs go: the local folder or a bucket on SeaweedFS (`s3_bucket`)."""
    return str(request.param)


@pytest.fixture
def storage_url(request: pytest.FixtureRequest, storage_kind: str) -> str | None:
    """The storage URL for `storage_kind`: None (the data directory's folder) or a fresh bucket."""
    if storage_kind == "local":
        return None
    bucket: Bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket.name}/hub"


@pytest.fixture(scope="session")
def migrated_schemas() -> Iterator[MigratedSchemas | None]:
    """PostgreSQL schemas at the newest revision, reused from test to test (tests/postgres.py)."""
    if POSTGRES_URL is None:
        yield None
        return
    with schema_pool(POSTGRES_URL) as schemas:
        yield schemas


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own for one test: a SQLite file, or a PostgreSQL schema.

    A test that uses `settings` (conftest's or a module's own) gets a database that already
    holds the newest schema, as the hub's first start leaves it: a SQLite file laid by
    `lay_migrated_sqlite` (tests/servers.py), a PostgreSQL schema from `migrated_schemas`,
    emptied and reused after the test. The hub then starts as it restarts, for a fraction of
    the cost of running every migration for every test. Any other test gets an empty database
    (a file not made yet, a new schema): tests of migrations and of a hub's first start.
    """
    migrated = "settings" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "trainhub.db"
        if migrated:
            lay_migrated_sqlite(path)
        yield f"sqlite:///{path}"
        return
    assert POSTGRES_URL is not None
    if migrated:
        schemas: MigratedSchemas = request.getfixturevalue("migrated_schemas")
        schema = schemas.take()
        try:
            yield schema_url(POSTGRES_URL, schema)
        finally:
            schemas.give_back(schema)
        return
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema_url(POSTGRES_URL, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def make_postgres_database() -> Iterator[Callable[[], str]]:
    """Make fresh PostgreSQL databases (CREATE DATABASE) for tests of whole databases.

    Needs TRAINHUB_TEST_DATABASE_URL (`make test` sets it), whose user may create databases.
    Every database made is dropped at the end of the test (tests/postgres.py).
    """
    if POSTGRES_URL is None:
        pytest.skip("set TRAINHUB_TEST_DATABASE_URL to a PostgreSQL server (make test does)")
    with postgres_databases(POSTGRES_URL) as make:
        yield make


@pytest.fixture
def postgres_database(make_postgres_database: Callable[[], str]) -> str:
    """A fresh PostgreSQL database of its own, dropped after the test."""
    return make_postgres_database()


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Return test settings: everything under tmp_path, generous rate limits and waits, a secret."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "public_url": "http://testserver",
        "allowed_hosts": ["testserver"],
        "secret_key": "test-secret-" + secrets.token_hex(8),
        "rate_limit": "1000/second",
        "anonymous_rate_limit": "1000/second",
        "web_rate_limit": "1000/second",
        "web_chart_rate_limit": "1000/second",
        # a loaded test machine can stall a query for more than the default second; the 503 that
        # answers such a stall is tested on real servers (tests/e2e/test_overload.py)
        "database_wait_s": 15.0,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings of a hub whose database already holds the newest schema (`database_url`)."""
    return make_settings(tmp_path, database_url)


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    yield application
    hub_state(application).db.dispose()


@pytest.fixture
def users(app: FastAPI) -> Users:
    """Users alice (admin) and bob, with one API key each."""
    return create_users(hub_state(app).db)


@pytest.fixture
def anon(app: FastAPI) -> Iterator[TestClient]:
    """A client that sends no API key."""
    with TestClient(app) as client:
        yield client


@pytest.fixture
def alice(app: FastAPI, users: Users) -> Iterator[TestClient]:
    """A client authenticated as alice (an admin)."""
    with TestClient(app, headers={"x-api-key": users.alice.key}) as client:
        yield client


@pytest.fixture
def bob(app: FastAPI, users: Users) -> Iterator[TestClient]:
    """A client authenticated as bob (not an admin)."""
    with TestClient(app, headers={"x-api-key": users.bob.key}) as client:
        yield client


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the tests: modules with `serial` tests first (SERIAL_GROUPS), then by folder
    (FOLDER_ORDER).

    pytest-xdist's loadscope hands modules out in this order (`--no-loadscope-reorder`, as the
    Makefile runs it). A `serial` test waits until every test running on another worker has
    ended, and the others wait meanwhile; at the start of the run nothing long is running yet.
    The sort is stable: within a module the tests keep their order.
    """
    serial_modules = {item.path for item in items if item.get_closest_marker("serial")}

    def rank(item: pytest.Item) -> tuple[int, int]:
        path = item.path.relative_to(TESTS) if item.path.is_relative_to(TESTS) else item.path
        if item.path in serial_modules:
            name = path.as_posix()
            return (0, SERIAL_MODULES.index(name) if name in SERIAL_MODULES else len(items))
        folder = path.parts[0]
        return (1, FOLDER_ORDER.index(folder) if folder in FOLDER_ORDER else len(FOLDER_ORDER))

    items.sort(key=rank)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which `-p no:xdist` leaves out
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `--dist loadscope`, hand out each group of SERIAL_GROUPS as one unit of work
    (decision 0025).

    Left to itself, loadscope hands a worker its next module when two of its tests are left, so
    a worker that ran a short module of few tests could take two more `serial` modules while
    another, on a long one, took none: the serial phase took 63 s instead of about 46. Every
    other module stays a unit of its own.
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    groups = {module: f"serial-{i}" for i, group in enumerate(SERIAL_GROUPS) for module in group}

    class SerialGroupsWhole(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0].removeprefix("tests/")
            return groups.get(module) or super()._split_scope(nodeid)

    return SerialGroupsWhole(config, log)


# this worker's shared lock on `serial.lock`, kept from one `serial` test to the next
_SERIAL_HOLD: list[IO[str]] = []


def _is_serial(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker("serial") is not None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """Run a test marked `serial` while no other pytest-xdist worker runs a test that is not.

    `serial` tests pace themselves by the clock, and each uses a fraction of one core, so they
    may run beside each other, but not beside the rest of the suite, which keeps every core busy.
    They go first (`pytest_collection_modifyitems`) and have the right of way (decision 0025): a
    worker holds a shared lock on `serial.lock` from before its first `serial` test waits until
    the teardown of the last of a row of them, and each waits only for the tests that are not
    `serial` and already run (an exclusive lock on `tests.lock`, taken and let go). Any other
    test takes `serial.lock` exclusively, so it starts only once no `serial` test runs or
    waits, and holds a shared lock on `tests.lock` until it ends. Without workers nothing runs
    beside a test and no lock is taken.
    """
    if not hasattr(item.config, "workerinput"):
        return (yield)
    # Each worker's --basetemp is a folder of the run's own temp dir, which they all share.
    shared = Path(item.config.option.basetemp).parent
    if _is_serial(item):
        if not _SERIAL_HOLD:
            hold = (shared / "serial.lock").open("a")
            fcntl.flock(hold, fcntl.LOCK_SH)  # no test that is not serial starts from now on
            _SERIAL_HOLD.append(hold)
        with (shared / "tests.lock").open("a") as tests:
            fcntl.flock(tests, fcntl.LOCK_EX)  # those running have ended
        try:
            return (yield)
        finally:
            if not _is_serial(nextitem):  # else the lock is kept, so no other test slips in
                _SERIAL_HOLD.pop().close()
    with (
        (shared / "tests.lock").open("a") as tests,
        (shared / "serial.lock").open("a") as serials,
    ):
        fcntl.flock(serials, fcntl.LOCK_EX)  # no serial test runs or waits
        fcntl.flock(tests, fcntl.LOCK_SH)
        fcntl.flock(serials, fcntl.LOCK_UN)
        return (yield)
