"""Two `trainhub server` replicas on one PostgreSQL database, one S3 bucket and one Redis.

`start_replicas` runs the deployment of docs/deployment.md ("Several replicas") on this machine:
replicas A and B with the same database URL, the same `s3://bucket/prefix` on SeaweedFS, the same
Redis and the same secret key, each with a data directory of its own (its spool only). Both are
started at the same moment, and stopped however the block ends: SIGTERM, then SIGKILL after
STOP_GRACE_S.

Redis is the machine's, shared with every other test: the replicas use the database REDIS_DB and
a job queue named for this stack alone, and the queue's keys are deleted at the end. The other
keys the hub writes there (rate-limit windows, live-stream slots) are named by user ids of this
stack's own database and expire by themselves.
"""

import secrets
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from tests.s3 import Bucket
from tests.seaweed import environment_for
from tests.servers import RunningServer, cli_create_user, free_port, spawn_server

REDIS_DB = 12  # the tier's own database number on the machine's Redis (0 is everybody's)
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
STOP_GRACE_S = 10.0
RATE_LIMIT = 60  # requests per key holder per minute: small, so test 4 can spend it all
GENEROUS = "1000/second"


@dataclass
class Replicas:
    """Replicas A and B of one hub, and what tests need to talk to them."""

    a: RunningServer
    b: RunningServer
    database_url: str
    bucket: Bucket
    env: dict[str, str]
    admin_key: str = ""

    def new_user(self, name: str) -> str:
        """Create a user through A (as the admin) and return its API key.

        Every test takes users of its own: the rate limit is per user and deliberately small.
        """
        answer = httpx.post(
            f"{self.a.url}/v1/users",
            json={"meta": {"name": f"{name}-{secrets.token_hex(3)}"}},
            headers={"x-api-key": self.admin_key},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["data"]["apiKey"])

    def logs(self) -> str:
        """Return what both replicas printed, for assertion messages."""
        return "\n".join(f"--- {s.url} ---\n{s.log()[-4000:]}" for s in (self.a, self.b))


def replica_env(database_url: str, bucket: Bucket, queue_name: str) -> dict[str, str]:
    """Return the settings every replica shares (as compose.yaml gives hub-1 and hub-2)."""
    return {
        "TRAINHUB_DATABASE_URL": database_url,
        "TRAINHUB_STORAGE_URL": f"s3://{bucket.name}/hub",
        "TRAINHUB_REDIS_URL": REDIS_URL,
        "TRAINHUB_QUEUE_NAME": queue_name,
        "TRAINHUB_SECRET_KEY": "replicas-" + secrets.token_hex(32),
        "TRAINHUB_CREATE_ADMIN": "false",  # the first admin is made once, by the CLI
        "TRAINHUB_RATE_LIMIT": f"{RATE_LIMIT}/minute",
        "TRAINHUB_ANONYMOUS_RATE_LIMIT": GENEROUS,
        "TRAINHUB_WEB_RATE_LIMIT": GENEROUS,
        "TRAINHUB_WEB_CHART_RATE_LIMIT": GENEROUS,
        **environment_for(bucket.endpoint_url),
    }


def stop_server(server: RunningServer) -> None:
    """Stop a replica: SIGTERM, then SIGKILL when it has not ended after STOP_GRACE_S."""
    if server.proc.poll() is not None:
        return
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def spawn_together(folder: Path, env: dict[str, str], count: int = 2) -> list[RunningServer]:
    """Start `count` servers at the same moment; return them once every one answers /healthz.

    When one fails to come up, the others are stopped and the failure is raised.
    """
    ports = [free_port() for _ in range(count)]
    with ThreadPoolExecutor(count) as pool:
        futures = [
            pool.submit(spawn_server, folder / f"replica-{i}", port, env)
            for i, port in enumerate(ports)
        ]
    started = [f.result() for f in futures if f.exception() is None]
    for future in futures:
        failure = future.exception()
        if failure is not None:
            for server in started:
                stop_server(server)
            raise failure
    return started


def forget_queue(queue_name: str) -> None:
    """Delete the keys of this stack's job queue from the tier's Redis database."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"*{queue_name}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def start_replicas(
    folder: Path,
    database_url: str,
    bucket: Bucket,
    *,
    create_admin: bool = True,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Replicas]:
    """Run replicas A and B for the duration of the block.

    With `create_admin`, `trainhub users create admin --admin --init` runs first (creating the
    tables, as compose.yaml's `migrate` service does) and `admin_key` holds its key; without it
    the replicas start on the database as it is, and migrate it themselves.
    """
    queue_name = f"replicas-{secrets.token_hex(4)}"
    env = {**replica_env(database_url, bucket, queue_name), **(extra_env or {})}
    with ExitStack() as cleanup:
        cleanup.callback(forget_queue, queue_name)
        admin_key = ""
        if create_admin:
            admin_key = cli_create_user(folder / "cli", "admin", admin=True, env=env)
        a, b = spawn_together(folder, env)
        for server in (a, b):
            cleanup.callback(stop_server, server)
        yield Replicas(a, b, database_url, bucket, env, admin_key)
