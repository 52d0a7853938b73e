"""The image's command, run for real: a wheel in a clean venv, as the Dockerfile builds it.

The wheel is built from this checkout and installed with the extras the Dockerfile installs into
a fresh virtual environment; then the Dockerfile's ENTRYPOINT and CMD run with the variables of
its ENV lines, pointed at a fresh PostgreSQL database, a bucket on SeaweedFS and the machine's
Redis, as compose.yaml points the replicas at theirs. /healthz answers 200, and so does the
Dockerfile's HEALTHCHECK command. No container engine is needed.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.deployfiles import DOCKERFILE, ROOT, exec_form, final_stage, image_environment
from tests.s3 import Bucket
from tests.seaweed import environment_for
from tests.servers import assert_healthy, free_port

pytestmark = pytest.mark.e2e
REDIS_URL = "redis://127.0.0.1:6379/0"


def install_wheel(folder: Path) -> Path:
    """Build trainhub's wheel, install it with the image's extras in a new venv; return its bin."""
    dist = folder / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        timeout=600,
    )
    (wheel,) = dist.glob("trainhub-*.whl")
    extras = re.search(r"trainhub-\*\.whl\)(\[[a-z0-9,]+\])", DOCKERFILE.read_text())
    assert extras is not None, "the Dockerfile installs the wheel with its extras"
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", f"{wheel}{extras[1]}"],
        check=True,
        timeout=600,
    )
    return venv / "bin"


def test_the_image_command_serves_healthz_from_a_wheel_on_postgres_s3_and_redis(
    tmp_path: Path, postgres_database: str, s3_bucket: Bucket
) -> None:
    bin_dir = install_wheel(tmp_path)
    final = dict(final_stage())
    command = exec_form(final["ENTRYPOINT"]) + exec_form(final["CMD"])
    port = free_port()
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",  # as the image's PATH puts its venv first
        "HOME": str(tmp_path),
        **image_environment(),
        # what differs from a container: loopback only, a free port, a folder for /data
        "TRAINHUB_HOST": "127.0.0.1",
        "TRAINHUB_PORT": str(port),
        "TRAINHUB_DATA_DIR": str(tmp_path / "data"),
        # what compose.yaml gives each replica
        "TRAINHUB_DATABASE_URL": postgres_database,
        "TRAINHUB_STORAGE_URL": f"s3://{s3_bucket.name}/blobs",
        "TRAINHUB_REDIS_URL": REDIS_URL,
        "TRAINHUB_SECRET_KEY": "image-test-" + "s" * 32,
        **environment_for(s3_bucket.endpoint_url),
    }
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", proc, log)
        assert_healthy(httpx.get(f"http://127.0.0.1:{port}/healthz"))
        check = exec_form(final["HEALTHCHECK"].split("CMD", 1)[1].strip())
        assert subprocess.run(check, env=env, timeout=30, check=False).returncode == 0
        assert f"{bin_dir}/python" in subprocess.check_output(
            ["python", "-c", "import sys; print(sys.executable)"], env=env, text=True
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "storage: s3://" in text and "postgresql+psycopg" in text, text


def wait_for_health(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the image command exited {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no /healthz within 60 s:\n{log.read_text()}")
