"""Drive the app at the ASGI level: bodies that arrive slowly, stop short, or race each other.

TestClient sends a whole body at once; these calls hand the app one chunk at a time, with a pause
or a disconnect where the test asks, as a real client on a slow or dropped connection would.
"""

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    headers: dict[str, str],
    chunks: Sequence[bytes] = (),
    *,
    pause_s: float = 0.0,
    disconnect: bool = False,
) -> Answer:
    """Send a request whose body is `chunks`, `pause_s` apart; end in a disconnect if asked."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (k.lower().encode(), v.encode()) for k, v in {"host": "testserver", **headers}.items()
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    pending = list(chunks)
    sent: list[Message] = []
    finished = asyncio.Event()

    async def receive() -> Message:
        if pending:
            if pause_s:
                await asyncio.sleep(pause_s)
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or disconnect}
        if disconnect:
            return {"type": "http.disconnect"}
        await finished.wait()  # the body is complete: later receives wait for the response end
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], body)
