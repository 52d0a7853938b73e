"""Start-up costs that every test of the suite pays: building the app, starting a server.

Prints the time `create_app` takes on a database that already holds the newest schema (what
the `app` fixture of tests/conftest.py does about 1,300 times a run), split into building the
app, entering a TestClient (the lifespan), one GET /healthz and leaving, as the median of
`--rounds` apps; and the wall time and CPU time of `trainhub server` processes from their
start until /healthz answers (what tests/servers.py does about 60 times a run), as the median
of `--servers` starts. The server runs from the same Python as this script.

Run: .venv/bin/python bench/startup.py [--rounds 20] [--servers 3]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx

warnings.filterwarnings("ignore", category=DeprecationWarning)

from fastapi.testclient import TestClient  # noqa: E402

from trainhub.server.app import create_app  # noqa: E402
from trainhub.server.db.migrate import upgrade  # noqa: E402
from trainhub.server.settings import Settings  # noqa: E402
from trainhub.server.state import hub_state  # noqa: E402


def app_rounds(folder: Path, rounds: int) -> list[tuple[float, float, float, float]]:
    """Build `rounds` apps on copies of one migrated SQLite file; return their step times (s)."""
    template = folder / "template.db"
    upgrade(f"sqlite:///{template}")
    times = []
    for i in range(rounds + 1):  # the first one also imports and warms caches: not counted
        data_dir = folder / f"hub-{i}"
        data_dir.mkdir()
        shutil.copyfile(template, data_dir / "trainhub.db")
        start = time.perf_counter()
        settings = Settings(
            data_dir=data_dir, public_url="http://testserver", allowed_hosts=["testserver"]
        )
        app = create_app(settings)
        built = time.perf_counter()
        with TestClient(app) as client:
            entered = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            answered = time.perf_counter()
        left = time.perf_counter()
        hub_state(app).db.dispose()
        if i:
            times.append((built - start, entered - built, answered - entered, left - answered))
    return times


def server_starts(folder: Path, count: int) -> list[tuple[float, float]]:
    """Start `trainhub server` `count` times on one data dir; return (wall s, CPU s) to /healthz."""
    data_dir = folder / "server"
    data_dir.mkdir()
    upgrade(f"sqlite:///{data_dir / 'trainhub.db'}")
    port = 28_555
    env = {**os.environ, "TRAINHUB_EMBEDDED_WORKER": "off"}
    command = [sys.executable, "-m", "trainhub.cli", "server", "--port", str(port)]
    results = []
    for _ in range(count):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*command, "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {proc.returncode}")
                time.sleep(0.02)
            wall = time.perf_counter() - start
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            results.append((wall, cpu))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--servers", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainhub-startup-") as scratch:
        folder = Path(scratch)
        steps = list(zip(*app_rounds(folder, args.rounds), strict=True))
        names = ("create_app", "TestClient enter", "GET /healthz", "TestClient exit")
        print(f"app fixture, median of {args.rounds} apps (ms):")
        for name, values in zip(names, steps, strict=True):
            print(f"  {name:<18} {statistics.median(values) * 1000:6.1f}")
        starts = server_starts(folder, args.servers)
        wall = statistics.median(w for w, _ in starts)
        cpu = statistics.median(c for _, c in starts)
        print(
            f"trainhub server to /healthz, median of {args.servers}: {wall:.2f} s, CPU {cpu:.2f} s"
        )


if __name__ == "__main__":
    main()
