"""Start real `trainhub server` processes for end-to-end and compatibility tests.

A server runs on a free 127.0.0.1 port with its own data directory; `start_server` waits for
/healthz and fails with the server's output attached if it does not come up.
"""

import atexit
import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from trainhub.server.db import users as user_queries
from trainhub.server.db.engine import Database
from trainhub.server.db.migrate import sqlite_path, upgrade
from trainhub.server.filemodes import create_private_file, make_private_dirs
from trainhub.server.settings import Settings

TRAINHUB = [sys.executable, "-m", "trainhub.cli"]
FIRST_PORT = 20000  # below the ephemeral range (Linux: 32768-60999) that client sockets use
PORTS_PER_WORKER = 1000


# the ports handed out last: not handed out again, since a caller may not have bound one yet
# (SeaweedFS takes 11 ports at once, and two draws of one port made `weed mini` fail to start)
_RECENT: deque[int] = deque(maxlen=PORTS_PER_WORKER // 2)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now.

    Each pytest-xdist worker draws from a block of its own (gw0: 20000-20999, gw1: 21000-21999,
    ...; a run without workers uses the first), so two workers never hand out the same port. The
    blocks lie below the kernel's ephemeral range, so no client connection's source port can take
    the port between this check and the server's bind. A port handed out recently is not handed
    out again, so callers that take several ports before binding any get distinct ones.
    """
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    first = FIRST_PORT + worker % 12 * PORTS_PER_WORKER
    for port in random.sample(range(first, first + PORTS_PER_WORKER), 100):
        if port in _RECENT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _RECENT.append(port)
            return port
    raise RuntimeError(f"no free port among 100 tried in {first}-{first + PORTS_PER_WORKER - 1}")


def assert_healthy(answer: httpx.Response) -> None:
    """Assert a /healthz answer says the database, the storage, the job queue and the source of
    live updates all work (a 200 may also say "degraded": Redis lost, say)."""
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert (data["database"], data["storage"], data["queue"]["status"]) == ("ok", "ok", "ok")
    assert data["queue"]["depth"] >= 0 and data["queue"]["workers"] >= 0
    assert data["live"]["status"] == "ok" and data["live"]["source"] in ("database", "redis")


def run_cli(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> str:
    """Run `trainhub ARGS --data-dir D` and return its stdout; raise with stderr on failure."""
    proc = subprocess.run(
        [*TRAINHUB, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"trainhub {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def cli_create_user(
    data_dir: Path, name: str, *, admin: bool = False, env: dict[str, str] | None = None
) -> str:
    """Create a user (and the database if need be) with the real CLI; return its API key.

    `env` adds settings, such as the TRAINHUB_DATABASE_URL of a server that uses PostgreSQL.
    """
    flags = ["--admin"] if admin else []
    out = run_cli("users", "create", name, "--init", *flags, data_dir=data_dir, env=env)
    return out.strip().splitlines()[-1].strip()


def create_user(
    data_dir: Path, name: str, *, admin: bool = False, env: dict[str, str] | None = None
) -> str:
    """Create a user (and the database if need be) as `trainhub users create --init` would.

    `env` adds settings, such as the TRAINHUB_DATABASE_URL of a server that uses PostgreSQL.
    This runs in the test's process: the command itself is tested through the real CLI
    (tests/integration/test_cli.py and test_cli_startup.py), and every server start saves
    two interpreter starts this way. A new SQLite database is laid by `lay_migrated_sqlite`, as
    the `settings` fixture's are.
    """
    url = (env or {}).get("TRAINHUB_DATABASE_URL") or database_url_of(data_dir)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        lay_migrated_sqlite(path)
    else:
        upgrade(url)
    db = Database(url)
    try:
        with db.write() as session:
            _, key = user_queries.create_user(session, name, admin=admin)
    finally:
        db.dispose()
    return key


def database_url_of(data_dir: Path) -> str:
    """The database URL a server given only `--data-dir data_dir` uses."""
    return Settings(data_dir=data_dir).resolved_database_url()


def lay_migrated_sqlite(path: Path) -> None:
    """Make `path` (0600, in folders made 0700) a SQLite database holding the newest schema.

    It is a copy of a file the hub's own migrations made once in this process: what a hub's
    first start would have made, for a fraction of the cost of running every migration again.
    """
    make_private_dirs(path.parent)
    create_private_file(path)
    shutil.copyfile(migrated_sqlite_template(), path)


@functools.cache
def migrated_sqlite_template() -> Path:
    """A SQLite file holding the newest schema, made once per process (removed at its exit)."""
    folder = Path(tempfile.mkdtemp(prefix="trainhub-schema-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "trainhub.db"
    upgrade(f"sqlite:///{path}")
    leftovers = [p.name for p in folder.iterdir() if p != path]
    assert not leftovers, f"the migrated database is not one file: {leftovers}"
    return path


@dataclass
class RunningServer:
    """A `trainhub server` subprocess and what tests need to talk to it."""

    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    keys: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        """Return everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the server and wait for it to end."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


def spawn_server(
    data_dir: Path, port: int, extra_env: dict[str, str] | None = None, *extra_args: str
) -> RunningServer:
    """Start `trainhub server` on `port` and wait until /healthz answers 200."""
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    log_path = data_dir.parent / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
    env["TRAINHUB_EMBEDDED_WORKER"] = "off"  # a test that wants workers starts them
    env.update(extra_env or {})
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                *TRAINHUB,
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--public-url",
                url,
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = RunningServer(url=url, data_dir=data_dir, proc=proc, log_path=log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"trainhub server exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"trainhub server did not answer /healthz within 60 s:\n{server.log()}")


@contextmanager
def start_server(
    tmp_path: Path,
    *extra_args: str,
    extra_env: dict[str, str] | None = None,
    users_by_cli: bool = False,
) -> Iterator[RunningServer]:
    """Run a server with users `alice` (admin) and `bob` for the duration of the block.

    `users_by_cli` makes the users with `trainhub users create` in a subprocess, as an operator
    does, rather than in the test's process.
    """
    data_dir = tmp_path / "hub-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    make_user = cli_create_user if users_by_cli else create_user
    keys = {
        "alice": make_user(data_dir, "alice", admin=True),
        "bob": make_user(data_dir, "bob"),
    }
    server = spawn_server(data_dir, free_port(), extra_env, *extra_args)
    server.keys = keys
    try:
        yield server
    finally:
        server.kill(signal.SIGTERM)
