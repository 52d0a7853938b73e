"""Starlette's TestClient, with one crossing to the app's event loop per request.

Starlette's transport (1.10) streams each answer: a request makes about eight calls into the
event-loop thread of the client's portal (events, a memory stream, a cancel scope, the app's
task, one call per body chunk), and each call is a thread switch: 0.8 to 1.7 ms of CPU per
request on top of the app's own work (docs/performance.md, "Test suite"). Here a request whose
answer is read whole (`client.get`, `client.post`, ...) runs as one coroutine in one call, with the
scope Starlette's transport gives the app. `client.stream(...)`, a client used without `with`,
and websockets keep Starlette's own transport; so does everything else TestClient does (the
lifespan, cookies, redirects, `raise_server_exceptions`).
"""

from typing import Any
from urllib.parse import unquote

import anyio
import httpx
from starlette.testclient import TestClient as StarletteTestClient
from starlette.types import ASGIApp, Message

STREAMED = "trainhub.tests.streamed"  # a request extension: the caller reads the answer as it comes


class TestClient(StarletteTestClient):
    """A drop-in TestClient (same arguments) whose whole-answer requests cross threads once."""

    __test__ = False

    def __init__(
        self,
        app: ASGIApp,
        *args: Any,
        raise_server_exceptions: bool = True,
        root_path: str = "",
        client: tuple[str, int] = ("testclient", 50000),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            app,
            *args,
            raise_server_exceptions=raise_server_exceptions,
            root_path=root_path,
            client=client,
            **kwargs,
        )
        self._transport = _OneCallTransport(
            self, self._transport, raise_server_exceptions, root_path, client
        )

    def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> Any:
        if stream:
            request.extensions = {**request.extensions, STREAMED: True}
        return super().send(request, stream=stream, **kwargs)


class _OneCallTransport(httpx.BaseTransport):
    def __init__(
        self,
        owner: TestClient,
        starlette: httpx.BaseTransport,
        raise_server_exceptions: bool,
        root_path: str,
        client: tuple[str, int],
    ) -> None:
        self.owner = owner
        self.starlette = starlette
        self.raise_server_exceptions = raise_server_exceptions
        self.root_path = root_path
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        portal = self.owner.portal
        if (
            portal is None
            or request.extensions.get(STREAMED)
            or request.url.scheme
            not in (
                "http",
                "https",
            )
        ):
            return self.starlette.handle_request(request)
        body = request.read()
        status, headers, content = portal.call(self.exchange, request, body)
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(content), request=request
        )

    def close(self) -> None:
        self.starlette.close()

    async def exchange(
        self, request: httpx.Request, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Run the app on one request; return the status, headers and whole body it answered."""
        url = request.url
        port = url.port or {"http": 80, "https": 443}[url.scheme]
        headers = [
            (key.lower().encode(), value.encode()) for key, value in request.headers.multi_items()
        ]
        if "host" not in request.headers:
            headers.insert(0, (b"host", url.netloc))
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": request.method,
            "path": unquote(url.path),
            "raw_path": url.raw_path.split(b"?", 1)[0],
            "root_path": self.root_path,
            "scheme": url.scheme,
            "query_string": url.query,
            "headers": headers,
            "client": self.client,
            "server": [url.raw_host.decode("ascii"), port],
            "extensions": {"http.response.debug": {}, "http.response.trailers": {}},
            "state": self.owner.app_state.copy(),
        }
        sent = False
        status: int | None = None
        answer_headers: list[tuple[str, str]] = []
        parts: list[bytes] = []
        answered = anyio.Event()

        async def receive() -> Message:
            nonlocal sent
            if sent:  # asked again: the client "disconnects" once the whole answer is written
                await answered.wait()
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body}

        async def send(message: Message) -> None:
            nonlocal status, answer_headers
            if message["type"] == "http.response.start":
                assert status is None, 'received multiple "http.response.start" messages'
                status = message["status"]
                answer_headers = [(k.decode(), v.decode()) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                assert status is not None, 'received "http.response.body" before the start'
                if request.method != "HEAD":
                    parts.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    answered.set()

        try:
            await self.owner.app(scope, receive, send)
        except Exception:
            if self.raise_server_exceptions:
                raise
        finally:
            answered.set()
        if status is None:
            if self.raise_server_exceptions:
                raise AssertionError("TestClient did not receive any response.")
            return 500, [], b""
        return status, answer_headers, b"".join(parts)
