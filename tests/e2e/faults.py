"""Fault injection on loopback (docs/security.md §2.11): a TCP proxy, a trainer process, hub checks.

`FaultProxy` is a small asyncio TCP proxy on 127.0.0.1 that runs in a background thread of the
test process and sits between a client and a real `trainhub server`. It forwards bytes both
ways and counts them, and on request it cuts a connection once a number of client->server bytes
went through (optionally leaving the server side open for a while, as a lost FIN would), answers
`HTTP/1.1 503` itself, refuses connections as a stopped hub would, throttles, delays, pauses
(holds every byte for a while, as a frozen database would) and truncates responses. Tests read
its counters to tell how many bytes a resumed upload sent again.

`python -m tests.e2e.faults train ...` (run from the repository root) is a trainer: a
HUBTrainingSession driven like a training loop (metrics of 20 values per epoch, a small
checkpoint every few epochs, a pause per epoch, the final weights at the end). It prints one
JSON line per event on stdout so that a test can kill it, or the hub, at a chosen point.
`Trainer` starts it and reads those lines.
"""

import argparse
import asyncio
import hashlib
import json
import logging
import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
CHUNK = 64 * 1024

# 20 values per epoch, named as ultralytics names a segmentation run's losses and metrics.
METRIC_NAMES = (
    "train/box_loss",
    "train/seg_loss",
    "train/cls_loss",
    "train/dfl_loss",
    "metrics/precision(B)",
    "metrics/recall(B)",
    "metrics/mAP50(B)",
    "metrics/mAP50-95(B)",
    "metrics/precision(M)",
    "metrics/recall(M)",
    "metrics/mAP50(M)",
    "metrics/mAP50-95(M)",
    "val/box_loss",
    "val/seg_loss",
    "val/cls_loss",
    "val/dfl_loss",
    "lr/pg0",
    "lr/pg1",
    "lr/pg2",
    "model/GFLOPs",
)


def epoch_metrics(epoch: int) -> dict[str, float]:
    """Return the 20 values the trainer sends for `epoch` (a pure function of the epoch)."""
    return {
        name: round(1.0 / (2 + epoch + i) + 0.001 * ((epoch * 7 + i) % 13), 6)
        for i, name in enumerate(METRIC_NAMES)
    }


def checkpoint_bytes(epoch: int, size: int) -> bytes:
    """Return the content of the trainer's last.pt saved after `epoch`."""
    return random.Random(epoch).randbytes(size)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def write_random_file(path: Path, size: int, seed: int = 0) -> str:
    """Write `size` pseudo-random bytes (a 4 MiB block varied per block) and return the sha256."""
    rng = random.Random(seed)
    block = rng.randbytes(min(size, 4 * MIB))
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        left, index = size, 0
        while left > 0:
            piece = (index.to_bytes(8, "big") + block[8:])[: min(left, len(block))]
            handle.write(piece)
            digest.update(piece)
            left -= len(piece)
            index += 1
    return digest.hexdigest()


# --- the proxy ---------------------------------------------------------------------------------


@dataclass(eq=False)
class _Link:
    """One proxied connection: the writer towards the client and the one towards the server."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    number: int = 0
    up: int = 0
    down: int = 0
    truncate_after: int | None = None
    lingering: bool = False


@dataclass
class _Canned:
    """Answer requests with `status` ourselves: for `connections` more connections or until."""

    status: int
    connections: int | None
    until: float | None
    retry_after_s: float | None


class FaultProxy:
    """A TCP proxy 127.0.0.1:port -> 127.0.0.1:target_port, with faults on demand.

    Counters (bytes forwarded, each way, over every connection): `upstream_bytes` (client ->
    server) and `downstream_bytes`. `connections` counts accepted connections, `answered` the
    ones the proxy answered itself, `refused` the ones it reset, `cuts` the upstream byte
    counts at which it cut a connection. Use as a context manager; every method is thread-safe.
    """

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self.port = port
        self.upstream_bytes = 0
        self.downstream_bytes = 0
        self.connections = 0
        self.answered = 0
        self.refused = 0
        self.cuts: list[int] = []
        self.events: list[str] = []
        self.delay_s = 0.0
        self.rate_bytes_per_s: float | None = None
        self.paused_until = 0.0  # time.monotonic() before which no byte goes either way
        self._cut_at: int | None = None
        self._linger_s = 0.0
        self._canned: _Canned | None = None
        self._truncate: tuple[int, int] | None = None  # (response bytes kept, connections left)
        self._links: set[_Link] = set()
        self._started = time.monotonic()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy")
        self._thread.daemon = True

    # --- life cycle ---

    def start(self) -> "FaultProxy":
        self._thread.start()
        self._call(self._listen)
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- faults (called from any thread) ---

    def cut_after(self, n_bytes: int, *, linger_server_s: float = 0.0) -> None:
        """Once `n_bytes` more client->server bytes went through, cut that connection.

        The client side is reset at once. The server side is closed after `linger_server_s`
        (0: at once), so the server may keep waiting for bytes as it would after a lost FIN.
        """

        def arm() -> None:
            self._cut_at = self.upstream_bytes + n_bytes
            self._linger_s = linger_server_s
            self._log(f"armed: cut after {n_bytes} more upstream bytes")

        self._call(arm)

    def answer_status(
        self,
        status: int = 503,
        *,
        connections: int | None = None,
        seconds: float | None = None,
        retry_after_s: float | None = None,
        drop_open: bool = True,
    ) -> None:
        """Answer every request with `status` ourselves (the server never sees it), for the
        next `connections` connections and/or `seconds` seconds; `drop_open` resets the
        connections already open so that the client has to come back through us."""

        def arm() -> None:
            until = time.monotonic() + seconds if seconds is not None else None
            self._canned = _Canned(status, connections, until, retry_after_s)
            self._log(f"answering {status} (connections={connections}, seconds={seconds})")
            if drop_open:
                self._drop_all()

        self._call(arm)

    def pause(self, seconds: float) -> None:
        """Hold every byte, both ways and on every connection, for `seconds`: a frozen peer
        (as a database paused with SIGSTOP) whose connections stay open."""

        def arm() -> None:
            self.paused_until = time.monotonic() + seconds
            self._log(f"paused for {seconds} s")

        self._call(arm)

    def go_down(self) -> None:
        """Stop listening and reset every open connection: clients get 'connection refused'."""
        self._call(self._stop_listening)

    def come_up(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen)

    def truncate_responses(self, keep_bytes: int, connections: int = 1) -> None:
        """Forward only the first `keep_bytes` of the responses of the next `connections`
        connections, then reset them."""
        self._call(lambda: setattr(self, "_truncate", (keep_bytes, connections)))

    def reset(self) -> None:
        """Back to plain forwarding: listening, no fault armed, no throttle or delay."""

        def clear() -> None:
            self._cut_at, self._canned, self._truncate = None, None, None
            self.rate_bytes_per_s, self.delay_s, self.paused_until = None, 0.0, 0.0

        self.come_up()
        self._call(clear)

    def drop_all(self) -> None:
        """Reset every open connection now."""
        self._call(self._drop_all)

    def wait_upstream(self, n_bytes: int, timeout_s: float) -> bool:
        """Wait until `upstream_bytes` reaches `n_bytes`; True if it did in time."""
        deadline = time.monotonic() + timeout_s
        while self.upstream_bytes < n_bytes:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # --- inside the loop ---

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def _log(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self._started:7.3f}s {text}")

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._log(f"listening on {self.port}")

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._drop_all()
        self._log("down")

    async def _shutdown(self) -> None:
        await self._stop_listening()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _drop_all(self) -> None:
        for link in list(self._links):
            link.client.transport.abort()
            link.server.transport.abort()
        self._links.clear()

    def _take_canned(self) -> _Canned | None:
        canned = self._canned
        if canned is None:
            return None
        expired = canned.until is not None and time.monotonic() >= canned.until
        used_up = canned.connections is not None and canned.connections <= 0
        if expired or used_up:
            self._canned = None
            self._log(f"stopped answering {canned.status}")
            return None
        if canned.connections is not None:
            canned.connections -= 1
        return canned

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:  # shutting down; Python 3.11's streams would log it
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        canned = self._take_canned()
        if canned is not None:
            await self._answer(reader, writer, canned)
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:  # the hub is not running: the client sees a reset
            self.refused += 1
            writer.transport.abort()
            return
        link = _Link(writer, server_writer, number=self.connections)
        if self._truncate is not None:
            keep, left = self._truncate
            link.truncate_after = keep
            self._truncate = (keep, left - 1) if left > 1 else None
        self._links.add(link)
        try:
            await asyncio.gather(self._pump_up(reader, link), self._pump_down(server_reader, link))
        finally:
            self._links.discard(link)
            _close(writer)
            if not link.lingering:
                _close(server_writer)
            if max(link.up, link.down) >= MIB:  # the big ones: what a test wants to read
                self._log(
                    f"connection {link.number} ended: {link.up:,} bytes up, {link.down:,} down"
                )

    async def _pump_up(self, reader: asyncio.StreamReader, link: _Link) -> None:
        """Client -> server: count, throttle, delay, and cut when armed."""
        server = link.server
        try:
            while chunk := await reader.read(CHUNK):
                await self._hold()
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if self._cut_at is not None and self.upstream_bytes + len(chunk) >= self._cut_at:
                    keep = self._cut_at - self.upstream_bytes
                    server.write(chunk[:keep])
                    self.upstream_bytes += keep
                    link.up += keep
                    self._cut(link)
                    return
                server.write(chunk)
                self.upstream_bytes += len(chunk)
                link.up += len(chunk)
                await server.drain()
                if self.rate_bytes_per_s:
                    await asyncio.sleep(len(chunk) / self.rate_bytes_per_s)
        except (ConnectionError, OSError):
            pass
        if not link.lingering:
            _close(server)

    async def _pump_down(self, reader: asyncio.StreamReader, link: _Link) -> None:
        """Server -> client: count, and truncate when armed."""
        client = link.client
        sent = 0
        try:
            while chunk := await reader.read(CHUNK):
                await self._hold()
                if link.truncate_after is not None and sent + len(chunk) >= link.truncate_after:
                    client.write(chunk[: link.truncate_after - sent])
                    self.downstream_bytes += link.truncate_after - sent
                    await client.drain()
                    self._log(f"truncated a response after {link.truncate_after} bytes")
                    client.transport.abort()
                    link.server.transport.abort()
                    return
                client.write(chunk)
                sent += len(chunk)
                link.down += len(chunk)
                self.downstream_bytes += len(chunk)
                await client.drain()
        except (ConnectionError, OSError):
            pass
        _close(client)

    async def _hold(self) -> None:
        """Wait while the proxy is paused."""
        while (left := self.paused_until - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    def _cut(self, link: _Link) -> None:
        self._cut_at = None
        self.cuts.append(self.upstream_bytes)
        self._log(f"cut a connection at upstream byte {self.upstream_bytes}")
        link.client.transport.abort()
        if self._linger_s > 0:
            link.lingering = True
            self._loop.call_later(self._linger_s, _close, link.server)
        else:
            _close(link.server)

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, canned: _Canned
    ) -> None:
        """Read one request (head and Content-Length body), answer `canned.status`, close."""
        self.answered += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length" and value.strip().isdigit():
                    length = int(value.strip())
            while length > 0:
                chunk = await reader.read(min(CHUNK, length))
                if not chunk:
                    break
                length -= len(chunk)
            body = json.dumps(
                {"success": False, "message": "the hub is unavailable (fault proxy)"}
            ).encode()
            lines = [
                f"HTTP/1.1 {canned.status} Service Unavailable",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                "Connection: close",
            ]
            if canned.retry_after_s is not None:
                lines.append(f"Retry-After: {canned.retry_after_s:g}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        writer.close()


def _close(writer: asyncio.StreamWriter) -> None:
    """Close one side (a FIN after what was written), unless it is closing already."""
    if not writer.transport.is_closing():
        writer.close()


# --- the hub, seen from a test -----------------------------------------------------------------


def hub_client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=60)


def create_model(url: str, key: str, name: str = "faults") -> str:
    with hub_client(url, key) as api:
        answer = api.post(
            "/v1/models",
            json={
                "meta": {"name": name},
                "config": {"epochs": 50, "imageSize": 64, "batchSize": 4},
                "dataset": {"name": "coco8.yaml"},
                "lineage": {"architecture": {"name": "yolo11n"}, "parent": {}},
            },
        )
        answer.raise_for_status()
        return str(answer.json()["data"]["id"])


def hub_metrics(url: str, key: str, model_id: str) -> dict[str, dict[str, Any]]:
    """Return {metric name: {epoch as a string: value}} as the hub serves it."""
    with hub_client(url, key) as api:
        answer = api.get(f"/v1/models/{model_id}/metrics")
        answer.raise_for_status()
        return {s["meta"]["name"]: s["data"] for s in answer.json()["data"]}


def hub_record(url: str, key: str, model_id: str) -> dict[str, Any]:
    with hub_client(url, key) as api:
        answer = api.get(f"/v1/models/{model_id}")
        answer.raise_for_status()
        return dict(answer.json()["data"])


def download_sha256(link: str) -> str:
    """Stream a signed weights link and return the sha256 of its bytes."""
    digest = hashlib.sha256()
    with httpx.stream("GET", link, timeout=120) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_bytes(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def epochs_on_hub(series: dict[str, dict[str, Any]]) -> dict[str, list[int]]:
    """Return {metric name: sorted epochs} (each epoch appears once per series by nature)."""
    return {name: sorted(int(e) for e in data) for name, data in series.items()}


def assert_metrics_exactly(series: dict[str, dict[str, Any]], epochs: range | list[int]) -> None:
    """Every one of the 20 series holds exactly `epochs`, each with the value the trainer sent."""
    wanted = sorted(epochs)
    assert sorted(series) == sorted(METRIC_NAMES), sorted(series)
    for name, data in series.items():
        keys = [int(k) for k in data]
        assert len(keys) == len(set(keys)), f"{name}: an epoch appears twice: {keys}"
        assert sorted(keys) == wanted, f"{name}: epochs {sorted(keys)} != {wanted}"
        for epoch in wanted:
            assert data[str(epoch)] == epoch_metrics(epoch)[name], (name, epoch)


# --- shared by the fault tests (test_faults.py, test_network_faults.py) ------------------------

EPOCHS = 50
CKPT_BYTES = 64 * 1024
BIG = 64 * MIB


def say(text: str) -> None:
    """Print a figure or a random choice (shown with `pytest -s`, and kept in the log)."""
    sys.stdout.write(f"[faults] {text}\n")
    sys.stdout.flush()
    logging.getLogger("tests.faults").warning(text)


def checkpoint_shas(ckpt_bytes: int = CKPT_BYTES) -> set[str]:
    return {sha256_bytes(checkpoint_bytes(e, ckpt_bytes)) for e in range(EPOCHS)}


def trainer_args(url: str, key: str, model_id: str, work: Path, *extra: str) -> list[str]:
    return [
        "--url",
        url,
        "--key",
        key,
        "--model",
        model_id,
        "--outbox",
        str(work / "outbox" / "outbox.sqlite3"),
        "--workdir",
        str(work / "run"),
        "--ckpt-bytes",
        str(CKPT_BYTES),
        *extra,
    ]


def assert_trained_with(url: str, key: str, model_id: str, sha256: str) -> dict[str, Any]:
    record = hub_record(url, key, model_id)
    assert record["status"] == "trained", record["status"]
    assert record["weights"], record
    assert download_sha256(record["weights"]) == sha256
    return record


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without TRAINHUB_/HUB settings, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRAINHUB_") and k not in ("HUB_API_KEY", "ULTRALYTICS_HUB_API")
    }
    env.update(extra)
    return env


def run_sync(
    url: str, key: str, outbox: Path, config_dir: Path, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `trainhub sync` with TRAINHUB_URL/TRAINHUB_API_KEY/TRAINHUB_OUTBOX set."""
    env = clean_env(
        TRAINHUB_URL=url,
        TRAINHUB_API_KEY=key,
        TRAINHUB_OUTBOX=str(outbox),
        TRAINHUB_CONFIG_DIR=str(config_dir),
    )
    return subprocess.run(
        [sys.executable, "-m", "trainhub.cli", "sync", "--timeout", str(timeout_s)],
        capture_output=True,
        text=True,
        timeout=timeout_s + 120,
        env=env,
        cwd=ROOT,
        check=False,
    )


def outbox_rows(path: Path) -> tuple[list[int], list[tuple[str, int, str | None]]]:
    """Return (pending metric epochs, pending uploads as (kind, epoch, upload_url)) of a file."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=30)
    try:
        epochs = [r[0] for r in conn.execute("SELECT epoch FROM metrics ORDER BY epoch")]
        uploads = list(conn.execute("SELECT kind, epoch, upload_url FROM uploads ORDER BY id"))
    finally:
        conn.close()
    return epochs, uploads


# --- the trainer process -----------------------------------------------------------------------


class Trainer:
    """A `python -m tests.e2e.faults train` process and the events it printed."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.faults", "train", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=clean_env(**(env or {})),
        )
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name="trainer-stdout")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events.append(event)
            self._queue.put(event)
        self._queue.put(None)

    def wait_for(
        self, name: str, timeout_s: float, when: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        """Return the first (not yet consumed) event called `name` for which `when` holds."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"trainer: no {name!r} event in {timeout_s} s\n{self.log()}")
            try:
                event = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                raise RuntimeError(
                    f"trainer ended (code {self.proc.wait()}) before {name!r}\n{self.log()}"
                )
            if event["event"] == name and (when is None or when(event)):
                return event

    def last_epoch(self) -> int:
        """The last epoch the trainer reported as journaled (-1 if none)."""
        epochs = [e["epoch"] for e in self.events if e["event"] == "epoch"]
        return max(epochs, default=-1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)

    def wait(self, timeout_s: float) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        return code

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-20_000:]

    def close(self) -> None:
        self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@contextmanager
def trainer(args: list[str], log_path: Path) -> Iterator[Trainer]:
    process = Trainer(args, log_path)
    try:
        yield process
    finally:
        process.close()


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def train(argv: list[str]) -> None:
    """The trainer: see the module docstring and `--help`."""
    from trainhub import HUBTrainingSession
    from trainhub.client.outbox import Outbox

    parser = argparse.ArgumentParser(prog="faults train")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--model", required=True, help="model id")
    parser.add_argument("--outbox", required=True, type=Path)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--sleep", type=float, default=0.05, help="seconds of 'training' per epoch")
    parser.add_argument("--ckpt-every", type=int, default=5)
    parser.add_argument("--ckpt-bytes", type=int, default=64 * 1024)
    parser.add_argument("--final-bytes", type=int, default=256 * 1024)
    parser.add_argument("--threshold", type=int, default=32 * MIB, help="resumable from here")
    parser.add_argument("--flush-timeout", type=float, default=300.0)
    parser.add_argument("--metrics-interval", type=float, default=3.0)
    parser.add_argument("--ckpt-interval", type=float, default=900.0)
    parser.add_argument("--no-heartbeats", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    args.workdir.mkdir(parents=True, exist_ok=True)
    session = HUBTrainingSession(
        args.model,
        url=args.url,
        api_key=args.key,
        outbox=Outbox(args.outbox),
        weights_dir=args.workdir / "weights",
        flush_timeout_s=args.flush_timeout,
        resumable_threshold_bytes=args.threshold,
        heartbeats=not args.no_heartbeats,
        progress=False,
    )
    session.rate_limits.update(metrics=args.metrics_interval, ckpt=args.ckpt_interval)
    _emit("ready", model=session.model_id, pid=os.getpid())
    last = args.workdir / "last.pt"
    max_call_ns, calls = 0, 0
    for epoch in range(args.epochs):
        started = time.perf_counter_ns()
        session.metrics_queue[epoch] = json.dumps(epoch_metrics(epoch))
        session.upload_metrics()
        max_call_ns, calls = max(max_call_ns, time.perf_counter_ns() - started), calls + 1
        checkpoint = (epoch + 1) % args.ckpt_every == 0
        if checkpoint:
            last.write_bytes(checkpoint_bytes(epoch, args.ckpt_bytes))  # in place, as trainers do
            started = time.perf_counter_ns()
            session.upload_model(epoch, last)
            max_call_ns, calls = max(max_call_ns, time.perf_counter_ns() - started), calls + 1
        _emit("epoch", epoch=epoch, checkpoint=checkpoint, max_call_ms=max_call_ns / 1e6)
        time.sleep(args.sleep)
    best = args.workdir / "best.pt"
    sha256 = write_random_file(best, args.final_bytes, seed=12345)
    _emit("finishing", sha256=sha256, size=args.final_bytes)
    started_s = time.monotonic()
    session.upload_model(args.epochs - 1, best, map=0.5, final=True)  # flushes, then finishes
    left = session.outbox.counts(session.client.url, str(session.model_id))
    _emit(
        "done",
        drained=left == (0, 0),
        left=list(left),
        finish_s=time.monotonic() - started_s,
        max_call_ms=max_call_ns / 1e6,
        calls=calls,
        sha256=sha256,
    )


def main(argv: list[str]) -> None:
    if not argv or argv[0] != "train":
        raise SystemExit("usage: python -m tests.e2e.faults train --help")
    train(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
