"""Start-up errors of the operator commands, through the real CLI in a subprocess.

Each one is a single line on stderr that says what to do (never a traceback), and nothing is
created or announced before it.
"""

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.s3 import Bucket, aws_env
from tests.servers import TRAINHUB, free_port

# what a client-only install (`pip install trainhub`) lacks; None in sys.modules stops an import
CLIENT_ONLY = """
import sys
for name in ("fastapi", "uvicorn", "sqlalchemy", "alembic", "pydantic_settings"):
    sys.modules[name] = None
sys.argv = ["trainhub", *sys.argv[1:]]
from trainhub.cli import main
main()
"""


def trainhub(
    *args: str, cwd: Path, env: dict[str, str] | None = None, command: list[str] = TRAINHUB
) -> subprocess.CompletedProcess[str]:
    """Run `trainhub ARGS` in `cwd` with no TRAINHUB_* variables but `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """Return the only line of stderr, checking that it is an error and not a traceback."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_users_create_outside_the_data_folder_creates_nothing_and_says_where_it_looked(
    tmp_path: Path,
) -> None:
    proc = trainhub("users", "create", "carol", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    line = one_error_line(proc)
    assert f"no trainhub database at sqlite:///{tmp_path}/trainhub-data/trainhub.db" in line
    assert "--data-dir" in line and "TRAINHUB_DATA_DIR" in line and "--init" in line
    assert list(tmp_path.iterdir()) == []


def test_users_create_uses_the_data_dir_variable_and_names_the_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "hub-data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"TRAINHUB_DATA_DIR": str(data_dir)}
    created = trainhub("users", "create", "carol", "--init", cwd=elsewhere, env=env)
    assert created.returncode == 0, created.stderr
    assert created.stderr == f"database: sqlite:///{data_dir}/trainhub.db (created)\n"
    listed = trainhub("users", "list", cwd=elsewhere, env=env)
    assert listed.stderr == f"database: sqlite:///{data_dir}/trainhub.db\n"
    assert listed.stdout.splitlines()[1].endswith("  carol")
    assert list(elsewhere.iterdir()) == []


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    for args, status in (
        (["server"], 2),
        (["users", "list"], 1),
        (["db", "upgrade"], 1),
        (["demo"], 1),
    ):
        proc = trainhub(*args, "--data-dir", "data", cwd=tmp_path)
        assert proc.returncode == status, proc.stderr
        assert "the data directory data is a file, not a folder" in one_error_line(proc)


def test_a_busy_port_stops_the_server_before_it_creates_or_announces_anything(
    tmp_path: Path,
) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        proc = trainhub("server", "--port", str(port), "--data-dir", "new", cwd=tmp_path)
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: another process listens" in one_error_line(proc)
    assert proc.stdout == ""  # no "listening on", no once-only admin key
    assert not (tmp_path / "new").exists()


def test_an_unreachable_database_stops_the_server_with_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://trainhub:s3cret@127.0.0.1:{free_port()}/hub"
    proc = trainhub("server", "--port", str(free_port()), "--database-url", url, cwd=tmp_path)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "cannot open the database postgresql+psycopg://trainhub:***@127.0.0.1" in line
    assert "s3cret" not in proc.stderr + proc.stdout


def test_server_commands_on_a_client_only_install_say_which_extra_to_install(
    tmp_path: Path,
) -> None:
    client_only = [sys.executable, "-c", CLIENT_ONLY]
    for args, status in (
        (["server"], 2),
        (["users", "create", "carol"], 1),
        (["keys", "list", "--user", "carol"], 1),
        (["db", "upgrade"], 1),
    ):
        proc = trainhub(*args, cwd=tmp_path, command=client_only)
        assert proc.returncode == status, proc.stderr
        line = one_error_line(proc)
        assert f"`trainhub {' '.join(args[:2])}` needs the server extra" in line
        assert line.endswith('install it with: pip install "trainhub[server]"')
    assert trainhub("--help", cwd=tmp_path, command=client_only).returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_an_invalid_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    port = trainhub("server", cwd=tmp_path, env={"TRAINHUB_PORT": "abc"})
    assert port.returncode == 2
    assert "invalid setting port (TRAINHUB_PORT)" in one_error_line(port)
    hosts = trainhub("users", "list", cwd=tmp_path, env={"TRAINHUB_ALLOWED_HOSTS": "hub"})
    assert hosts.returncode == 2
    assert 'field "allowed_hosts"' in one_error_line(hosts)
    assert list(tmp_path.iterdir()) == []


# --- a replica started against what it cannot use ----------------------------------------------


def test_a_database_of_a_newer_schema_stops_every_command_with_one_line(tmp_path: Path) -> None:
    created = trainhub("db", "upgrade", "--init", "--data-dir", "data", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    with sqlite3.connect(tmp_path / "data" / "trainhub.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    server = trainhub("server", "--port", str(free_port()), "--data-dir", "data", cwd=tmp_path)
    assert server.returncode == 2 and server.stdout == ""
    line = one_error_line(server)
    assert "has schema revision '0099_from_the_future', newer than this trainhub" in line
    assert "upgrade this one" in line
    listed = trainhub("users", "list", "--data-dir", "data", cwd=tmp_path)
    assert listed.returncode == 1
    assert "newer than this trainhub" in one_error_line(listed)
    with sqlite3.connect(tmp_path / "data" / "trainhub.db") as conn:  # left as it was
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == "0099_from_the_future"


def s3_server(tmp_path: Path, bucket: Bucket, **env: str) -> subprocess.CompletedProcess[str]:
    variables = {**aws_env(bucket.endpoint_url), "AWS_MAX_ATTEMPTS": "1", **env}
    url = f"s3://{bucket.name}/hub"
    port = str(free_port())
    args = ("server", "--port", port, "--data-dir", "data", "--storage-url", url)
    return trainhub(*args, cwd=tmp_path, env=variables)


def test_a_wrong_s3_credential_stops_the_server_with_one_line(
    tmp_path: Path, s3_bucket: Bucket
) -> None:
    proc = s3_server(tmp_path, s3_bucket, AWS_SECRET_ACCESS_KEY="not-the-secret-" + "q" * 20)
    assert proc.returncode == 2 and proc.stdout == ""
    line = one_error_line(proc)
    assert f"bucket {s3_bucket.name!r} at {s3_bucket.endpoint_url} refuses this server" in line
    assert "SignatureDoesNotMatch" in line and "check AWS_ACCESS_KEY_ID" in line
    assert "not-the-secret" not in proc.stderr
    unknown = s3_server(tmp_path, s3_bucket, AWS_ACCESS_KEY_ID="nobody")
    assert unknown.returncode == 2
    assert "InvalidAccessKeyId" in one_error_line(unknown)


def test_a_missing_bucket_stops_the_server_with_one_line(tmp_path: Path, s3_bucket: Bucket) -> None:
    s3_bucket.client.delete_bucket(Bucket=s3_bucket.name)
    proc = s3_server(tmp_path, s3_bucket)
    assert proc.returncode == 2 and proc.stdout == ""
    line = one_error_line(proc)
    assert "NoSuchBucket" in line and "create the bucket" in line


def test_an_unreachable_redis_stops_the_server_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://:hunter2-secret@127.0.0.1:{port}/0"
    proc = trainhub(
        "server", "--port", str(free_port()), cwd=tmp_path, env={"TRAINHUB_REDIS_URL": url}
    )
    assert proc.returncode == 2 and proc.stdout == ""
    line = one_error_line(proc)
    assert f"Redis at redis://127.0.0.1:{port}/0 does not answer (TRAINHUB_REDIS_URL)" in line
    assert "hunter2" not in proc.stderr
