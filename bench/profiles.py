"""Where the server's CPU goes on each hot path: py-spy samples of a server under wrk.

For each path (metrics ingest and heartbeats at 64 connections, the models list, a 256 MiB final
upload), starts a fresh server, drives the path, samples the server process with py-spy (200 Hz,
idle threads left out) and prints the functions that hold the most samples: inclusive share
(the function and what it calls) and self share, trainhub's own frames marked. The raw samples
stay in the printed folder for flame graphs (`py-spy record -f raw` format).

Needs py-spy (in the dev venv) and wrk. Run: .venv/bin/python bench/profiles.py [--seconds 8]
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import upload_1gib
from common import BenchServer, bench_server, heading, load_note
from hotpaths import HERE, WRK

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
TOP = 14


def sample(hub: BenchServer, seconds: int, out: Path, drive: threading.Thread) -> Path:
    """Sample the server with py-spy while `drive` loads it; return the raw samples file."""
    spy = subprocess.Popen(
        [
            PY_SPY,
            "record",
            "-p",
            str(hub.pid),
            "-d",
            str(seconds),
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # py-spy attaches
    drive.start()
    drive.join()
    spy.wait(timeout=seconds + 60)
    return out


IDLE = ("Condition.wait", "select (selectors.py", "EpollSelector.select", "_worker (concurrent")
FRAMES_ABOVE_THE_APP = (
    "trainhub/cli/",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "events.py",
)


def summary(path: Path) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """Return the busiest trainhub frames (inclusive %) and the busiest leaf frames (self %) of
    py-spy's raw output, leaving out idle waits and the frames every request runs under."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not count.isdigit() or not frames or frames[-1].startswith(IDLE):
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            if "trainhub" in frame and not any(above in frame for above in FRAMES_ABOVE_THE_APP):
                inclusive[frame] += n
    total = max(total, 1)
    return (
        [(100 * n / total, f) for f, n in inclusive.most_common(TOP)],
        [(100 * n / total, f) for f, n in own.most_common(TOP // 2)],
    )


def wrk_thread(hub: BenchServer, script: str, connections: int, seconds: int, *args: str):
    command = [WRK, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(HERE / "wrk" / script)]
    return threading.Thread(
        target=subprocess.run,
        args=([*command, hub.url, "--", *args],),
        kwargs={"capture_output": True, "check": True},
    )


def upload_file(hub: BenchServer, model_id: str, size_mib: int) -> None:
    """Send one final weights upload of `size_mib` MiB, as the 1 GiB benchmark does."""
    path = hub.workdir / "best.pt"
    upload_1gib.make_file(path, size_mib * upload_1gib.MIB)
    body = upload_1gib.MultipartBody(path, {"epoch": "0", "type": "final"}, "best.pt")
    headers = {**hub.headers, "Content-Type": body.content_type, "Content-Length": str(body.length)}
    answer = httpx.post(
        f"{hub.url}/v1/models/{model_id}/upload", content=iter(body), headers=headers, timeout=600
    )
    answer.raise_for_status()
    path.unlink()


def run(seconds: int) -> None:
    heading(f"CPU profiles of the hot paths ({load_note()})")
    folder = Path(tempfile.mkdtemp(prefix="trainhub-profiles-"))
    for name in ("ingest", "heartbeats", "models list", "upload"):
        with bench_server("profile") as hub:
            with httpx.Client(headers=hub.headers, timeout=60) as client:
                model_id = hub.create_model(client)
                if name == "models list":
                    for _ in range(100):
                        hub.create_model(client)
            if name == "ingest":
                drive = wrk_thread(hub, "epoch.lua", 64, seconds, model_id, hub.key)
            elif name == "heartbeats":
                drive = wrk_thread(hub, "beat.lua", 64, seconds, model_id, hub.key)
            elif name == "models list":
                drive = wrk_thread(hub, "get.lua", 4, seconds, "/v1/models?limit=100", hub.key)
            else:
                drive = threading.Thread(target=upload_file, args=(hub, model_id, 256))
            out = sample(hub, seconds, folder / f"{name.replace(' ', '-')}.txt", drive)
        inclusive, own = summary(out)
        print(f"\n{name} (busy samples only; raw: {out})")
        for label, rows in (("trainhub frames, inclusive", inclusive), ("leaf frames, self", own)):
            print(f"  {label}:")
            for share, frame in rows:
                print(f"    {share:5.1f} %  {frame[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    run(args.seconds)


if __name__ == "__main__":
    main()
