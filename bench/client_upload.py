"""Client upload: the training process's memory while it uploads 1 GiB final weights, and the
bytes a resumable upload sends again after its connection is cut at 50 %.

The client runs in a subprocess (this script with `--child`): it creates a `HUBTrainingSession`
for a model of a real `trainhub server`, says it is ready, and on "go" calls
`session.upload_model(0, best.pt, map=0.5, final=True)` (which stages a copy, hashes it,
uploads it with a progress bar, and finishes the session). This process samples the child's
RSS every 20 ms with psutil from "go" until the child reports the end. Three runs:

- multipart: `resumable_threshold_bytes` above the size, one `POST /v1/models/{id}/upload`;
- resumable: threshold 1 MiB, tus `POST /v1/uploads` then one `PATCH`;
- resumable, cut at 50 %: the same through tests/e2e/faults.py's FaultProxy (the hub's public
  URL is the proxy's, so the upload URL goes through it too), which resets the connection once
  half the file's bytes went through; the session resumes (HEAD, then PATCH from the hub's
  offset). The proxy's counters give the bytes sent after the cut.

Each run checks the hub's weights against the file's sha256 (by downloading them). The file is
a random 64 MiB block repeated; it, the staging copy and the hubs live in a temp dir
(TRAINHUB_BENCH_TMP chooses where) that is deleted at the end. Nothing is asserted.

Run: .venv/bin/python bench/client_upload.py [--size-mib 1024]
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import (
    BENCH_ENV,
    CREATE_MODEL_BODY,
    MIB,
    Figure,
    RssSampler,
    bench_server,
    heading,
    mib,
    print_table,
)

from tests.e2e.faults import FaultProxy
from tests.servers import create_user, free_port, spawn_server

BENCH = "client_upload"
BLOCK_BYTES = 64 * MIB


@dataclass
class Hub:
    url: str  # what the client is given
    key: str
    proxy: FaultProxy | None = None


@dataclass
class Run:
    name: str
    seconds: float
    drained: bool
    rss_baseline: int
    rss_peak: int
    samples: int
    sha_ok: bool
    cut_at: int | None = None
    after_cut: int | None = None
    upstream: int | None = None

    @property
    def growth(self) -> int:
        return self.rss_peak - self.rss_baseline


def make_file(path: Path, size: int) -> str:
    """Write `size` bytes (a random block repeated) to `path`; return its sha256."""
    block = os.urandom(min(BLOCK_BYTES, size))
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left > 0:
            piece = block[: min(left, len(block))]
            file.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def create_model(hub: Hub) -> str:
    with httpx.Client(headers={"x-api-key": hub.key}, timeout=60) as client:
        answer = client.post(f"{hub.url}/v1/models", json=CREATE_MODEL_BODY)
        answer.raise_for_status()
        return str(answer.json()["data"]["id"])


def weights_sha256(hub: Hub, model_id: str) -> str | None:
    with httpx.Client(headers={"x-api-key": hub.key}, timeout=600) as client:
        record = client.get(f"{hub.url}/v1/models/{model_id}").json()["data"]
        if not record.get("weights"):
            return None
        digest = hashlib.sha256()
        with client.stream("GET", record["weights"]) as answer:
            for chunk in answer.iter_bytes(MIB):
                digest.update(chunk)
        return digest.hexdigest()


def upload_once(
    name: str, hub: Hub, path: Path, sha256: str, threshold: int, workdir: Path, cut: bool
) -> Run:
    """Run the child for one final upload and watch it."""
    model_id = create_model(hub)
    log = (workdir / f"child-{name.split()[0]}.log").open("wb")
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            f"--url={hub.url}",
            f"--key={hub.key}",
            f"--model={model_id}",
            f"--file={path}",
            f"--threshold={threshold}",
            f"--outbox={workdir / f'outbox-{model_id}.sqlite3'}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        ready = child.stdout.readline()
        if not ready:
            raise RuntimeError(f"the client did not start; see {log.name}")
        proxy = hub.proxy
        mark = proxy.upstream_bytes if proxy else 0
        if proxy and cut:
            proxy.cut_after(path.stat().st_size // 2)
        with RssSampler(child.pid, 0.02) as rss:
            child.stdin.write("go\n")
            child.stdin.flush()
            result = json.loads(child.stdout.readline())
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdin.close()
        child.stdout.close()
        log.close()
    run = Run(
        name,
        result["seconds"],
        result["drained"],
        rss.baseline,
        rss.peak,
        rss.samples,
        weights_sha256(hub, model_id) == sha256,
    )
    if proxy is not None:
        run.upstream = proxy.upstream_bytes - mark
        if cut and proxy.cuts:
            run.cut_at = proxy.cuts[-1] - mark
            run.after_cut = proxy.upstream_bytes - proxy.cuts[-1]
    return run


@contextmanager
def proxied_hub(env: dict[str, str]) -> Iterator[Hub]:
    """A server whose public URL is a FaultProxy in front of it (so upload URLs go through)."""
    workdir = Path(tempfile.mkdtemp(prefix="trainhub-bench-proxied-", dir=_tmp_root()))
    try:
        data_dir = workdir / "hub-data"
        key = create_user(data_dir, "bench")
        port = free_port()
        with FaultProxy(port) as proxy:
            server = spawn_server(data_dir, port, {**BENCH_ENV, **env}, "--public-url", proxy.url)
            try:
                yield Hub(proxy.url, key, proxy)
            finally:
                server.kill(signal.SIGTERM)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _tmp_root() -> str | None:
    return os.environ.get("TRAINHUB_BENCH_TMP") or None


def run(size_mib: int) -> list[Figure]:
    size = size_mib * MIB
    heading(f"client upload: {size_mib} MiB final weights from a training process")
    env = {"TRAINHUB_MAX_UPLOAD_BYTES": str(max(size + MIB, 2 * 1024**3))}
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="trainhub-bench-client-up-", dir=_tmp_root()) as tmp:
        workdir = Path(tmp)
        path = workdir / "best.pt"
        started = time.perf_counter()
        sha256 = make_file(path, size)
        print(f"wrote the {size_mib} MiB file in {time.perf_counter() - started:.1f} s")
        with bench_server("client-upload", env) as srv:
            hub = Hub(srv.url, srv.key)
            runs.append(upload_once("multipart", hub, path, sha256, size + 1, workdir, False))
            runs.append(upload_once("resumable", hub, path, sha256, MIB, workdir, False))
        with proxied_hub(env) as hub:
            runs.append(
                upload_once("resumable, cut at 50 %", hub, path, sha256, MIB, workdir, True)
            )
            proxy_log = list(hub.proxy.events) if hub.proxy else []
    rows = []
    for r in runs:
        rows.append(
            (
                r.name,
                round(r.seconds, 1),
                round(size / 1e6 / r.seconds, 1),
                round(mib(r.rss_baseline), 1),
                round(mib(r.rss_peak), 1),
                round(mib(r.growth), 1),
                "yes" if r.drained and r.sha_ok else "NO",
            )
        )
    print_table(
        [
            "upload",
            "seconds",
            "MB/s (stage + send)",
            "RSS before MiB",
            "RSS peak MiB",
            "growth MiB",
            "sha256 ok",
        ],
        rows,
    )
    cut = runs[-1]
    if cut.cut_at is not None and cut.after_cut is not None and cut.upstream is not None:
        print(
            f"cut at {cut.cut_at:,} bytes ({cut.cut_at / size:.1%} of the file); sent after the "
            f"cut: {cut.after_cut:,} bytes ({cut.after_cut / size:.1%} of the file); "
            f"sent in all: {cut.upstream:,} bytes, {cut.upstream - size:,} more than the file "
            f"({(cut.upstream - size) / size:.2%}; requests and headers included)"
        )
    else:
        print("the proxy never cut the upload: " + "; ".join(proxy_log))
    figures = [
        Figure(BENCH, f"{r.name}: client RSS growth", round(mib(r.growth), 1), "MiB") for r in runs
    ]
    if cut.after_cut is not None:
        figures.append(
            Figure(BENCH, "cut at 50 %: sent again", round(100 * cut.after_cut / size, 1), "%")
        )
    return figures


def child(argv: list[str]) -> None:
    """The training process: one session, one final upload on "go"."""
    import logging

    from trainhub import HUBTrainingSession
    from trainhub.client.outbox import Outbox

    parser = argparse.ArgumentParser()
    for name in ("url", "key", "model", "file", "outbox"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--threshold", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    session = HUBTrainingSession(
        args.model,
        url=args.url,
        api_key=args.key,
        outbox=Outbox(Path(args.outbox)),
        weights_dir=Path(args.outbox).parent / "weights",
        resumable_threshold_bytes=args.threshold,
        flush_timeout_s=1800,
        progress=True,
    )
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    session.upload_model(0, args.file, map=0.5, final=True)
    left = session.outbox.counts(session.client.url, str(session.model_id))
    print(json.dumps({"seconds": time.perf_counter() - started, "drained": left == (0, 0)}))


def main() -> None:
    if "--child" in sys.argv:
        child([a for a in sys.argv[1:] if a != "--child"])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the final weights")
    args = parser.parse_args()
    run(args.size_mib)


if __name__ == "__main__":
    main()
