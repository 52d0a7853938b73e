"""Weights upload: one 1 GiB final upload (`POST /v1/models/{id}/upload`), end to end.

The upload is described in docs/protocol/hub-v1.md §5.10.

Writes a file of `--size-mib` MiB (a 64 MiB random block repeated) to a temp dir, then sends it
as ultralytics does for final weights: multipart fields epoch=0, type=final, map=0.5 and the
file part `best.pt`, with a Content-Length. The body is produced by a generator that reads the
file 1 MiB at a time, so neither side needs the file in memory. Prints MB/s end to end (until
the server's answer, i.e. including its fsync and database write), the server's RSS sampled
every 50 ms (baseline, peak, growth), this client's peak RSS, and whether the sha256 the server
reports equals the file's. The file is deleted afterwards.

Run: .venv/bin/python bench/upload_1gib.py [--size-mib 1024]
"""

import argparse
import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
from common import (
    MIB,
    CpuMeter,
    Figure,
    LatencyProbe,
    RssSampler,
    bench_server,
    heading,
    log_lines,
    mib,
    ms,
    percentile,
    print_table,
)

BENCH = "upload_1gib"
BLOCK_BYTES = 64 * MIB
READ_BYTES = MIB


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


class MultipartBody:
    """A multipart/form-data body streamed from a file: fields first, then the file part."""

    def __init__(self, path: Path, fields: dict[str, str], part: str) -> None:
        self.path = path
        self.boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
            for name, value in fields.items()
        )
        # As requests sends it: a filename, no per-part Content-Type (docs/protocol/hub-v1.md §2.1).
        head += (
            f"--{self.boundary}\r\nContent-Disposition: form-data; "
            f'name="{part}"; filename="{part}"\r\n\r\n'
        ).encode()
        self.head = head
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.length = len(self.head) + path.stat().st_size + len(self.tail)
        self.sent_at: float | None = None

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        with self.path.open("rb") as file:
            while chunk := file.read(READ_BYTES):
                yield chunk
        yield self.tail
        self.sent_at = time.perf_counter()


def upload(size_mib: int) -> list[Figure]:
    """Run the benchmark once; print and return its figures."""
    size = size_mib * MIB
    heading(f"weights upload: one {size_mib} MiB final upload (best.pt)")
    env = {"TRAINHUB_MAX_UPLOAD_BYTES": str(max(size + MIB, 2 * 1024**3))}
    with (
        tempfile.TemporaryDirectory(prefix="trainhub-bench-file-") as tmp,
        bench_server("upload", env) as srv,
        httpx.Client(headers=srv.headers, timeout=httpx.Timeout(300, connect=10)) as client,
    ):
        path = Path(tmp) / "best.pt"
        t0 = time.perf_counter()
        sha256 = make_file(path, size)
        print(f"wrote {size_mib} MiB test file in {time.perf_counter() - t0:.1f} s")
        model_id = srv.create_model(client)
        client.get(f"{srv.url}/v1/models/{model_id}").raise_for_status()  # warm the server
        body = MultipartBody(path, {"epoch": "0", "type": "final", "map": "0.5"}, "best.pt")
        me = psutil.Process()
        with (
            RssSampler(srv.pid, 0.05) as server_rss,
            RssSampler(me.pid, 0.05) as client_rss,
            CpuMeter(srv.pid) as server_cpu,
            LatencyProbe(f"{srv.url}/v1/models/{model_id}", srv.headers) as probe,
        ):
            start = time.perf_counter()
            resp = client.post(
                f"{srv.url}/v1/models/{model_id}/upload",
                content=iter(body),
                headers={"Content-Type": body.content_type, "Content-Length": str(body.length)},
            )
            done = time.perf_counter()
        rss_after = psutil.Process(srv.pid).memory_info().rss
        wall = done - start
        data = (resp.json().get("data") or {}) if resp.is_success else {}
        sha_ok = data.get("sha256") == sha256 and data.get("size_bytes") == size
        blob = srv.server.data_dir / "blobs" / "models" / model_id / f"best-{sha256}"
        on_disk = blob.is_file() and blob.stat().st_size == size
        leftovers = list((srv.server.data_dir / "blobs" / "tmp").glob(".upload-*"))
        model = client.get(f"{srv.url}/v1/models/{model_id}").json().get("data", {})
        send_s = (body.sent_at or done) - start
        mb_s = size / 1e6 / wall
        rows = [
            ("HTTP status", resp.status_code, ""),
            ("end to end", wall, "s"),
            ("  of which sending the body", send_s, "s"),
            ("  of which waiting for the answer after the last byte", done - start - send_s, "s"),
            ("throughput end to end", mb_s, "MB/s"),
            ("throughput end to end", size / MIB / wall, "MiB/s"),
            ("server CPU during the upload", 100 * server_cpu.seconds / wall, "% of a core"),
            ("server CPU time per GiB", server_cpu.seconds / (size / 1024**3), "s"),
            ("GET /v1/models/{id} meanwhile (every 0.1 s): count", len(probe.latencies), ""),
            ("  p50 latency", ms(percentile(probe.latencies, 50)), "ms"),
            ("  p99 latency", ms(percentile(probe.latencies, 99)), "ms"),
            ("  max latency", ms(max(probe.latencies, default=float("nan"))), "ms"),
            ("  errors", probe.errors, ""),
            ("server RSS baseline", mib(server_rss.baseline), "MiB"),
            ("server RSS peak", mib(server_rss.peak), "MiB"),
            ("server RSS growth (peak - baseline)", mib(server_rss.growth), "MiB"),
            ("server RSS after the upload", mib(rss_after), "MiB"),
            ("server RSS samples", server_rss.samples, ""),
            ("client RSS growth (peak - baseline)", mib(client_rss.growth), "MiB"),
            ("sha256 and size reported = file's", "yes" if sha_ok else "NO", ""),
            ("blob on disk with the full size", "yes" if on_disk else "NO", ""),
            ("temp upload files left behind", len(leftovers), ""),
            (
                "model status / has_best_weights",
                f"{model.get('status')} / {model.get('has_best_weights')}",
                "",
            ),
        ]
        print_table(["figure", "value", "unit"], rows)
        if not resp.is_success:
            print(f"server answered {resp.status_code}: {resp.text[:500]}")
        for line in log_lines(srv.log(), "traceback", "error", "exception")[:10]:
            print("  server log: " + line[:200])
    return [
        Figure(BENCH, f"{size_mib} MiB upload: throughput", round(mb_s, 1), "MB/s"),
        Figure(BENCH, "server RSS baseline", round(mib(server_rss.baseline), 1), "MiB"),
        Figure(BENCH, "server RSS peak", round(mib(server_rss.peak), 1), "MiB"),
        Figure(BENCH, "server RSS growth", round(mib(server_rss.growth), 1), "MiB"),
        Figure(
            BENCH, "server CPU time per GiB", round(server_cpu.seconds / (size / 1024**3), 2), "s"
        ),
        Figure(
            BENCH,
            "GET model during upload: p99",
            round(ms(percentile(probe.latencies, 99)), 1),
            "ms",
        ),
        Figure(BENCH, "sha256 matches", "yes" if sha_ok else "NO"),
        Figure(BENCH, "throughput", round(size / MIB / wall, 1), "MiB/s"),
        Figure(BENCH, "client RSS growth", round(mib(client_rss.growth), 1), "MiB"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the upload")
    args = parser.parse_args()
    upload(args.size_mib)


if __name__ == "__main__":
    main()
