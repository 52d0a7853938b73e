"""The suite's TestClient (tests/testclient.py) answers as Starlette's does, one call a request."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient as StarletteTestClient

from tests.testclient import TestClient

released = asyncio.Event()


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "body": body.decode(),
            "client": list(request.client or ()),
            "host": request.headers["host"],
        },
        headers={"x-seen": "yes"},
        status_code=201,
    )


async def chunks() -> AsyncIterator[bytes]:
    for part in (b"one ", b"two ", b"three"):
        await asyncio.sleep(0.01)
        yield part


async def streamed(request: Request) -> Response:
    return StreamingResponse(chunks(), media_type="text/plain")


async def held(request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        yield b"first"
        await released.wait()  # only a client that reads as the answer comes sees this first
        yield b"second"

    return StreamingResponse(parts())


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def redirect(request: Request) -> Response:
    return PlainTextResponse("", status_code=303, headers={"location": "/echo?after=redirect"})


app = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST", "HEAD"]),
        Route("/streamed", streamed),
        Route("/held", held),
        Route("/boom", boom),
        Route("/redirect", redirect),
    ]
)


def test_an_answer_is_the_one_starlettes_client_gets() -> None:
    with TestClient(app) as ours, StarletteTestClient(app) as theirs:
        for client in (ours, theirs):
            client.cookies.clear()
        answers = [
            client.post("/echo?a=1&b=%20x", content=b"payload", headers={"x-h": "v"})
            for client in (ours, theirs)
        ]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["client"] == ["testclient", 50000]
    assert answers[0].headers["x-seen"] == "yes"
    assert answers[0].headers["content-length"] == answers[1].headers["content-length"]


def test_a_streaming_answer_is_read_whole_and_a_head_has_no_body() -> None:
    with TestClient(app) as client:
        assert client.get("/streamed").text == "one two three"
        head = client.head("/echo")
        assert head.status_code == 201 and head.content == b""


def test_stream_reads_the_answer_as_it_comes() -> None:
    released.clear()
    with TestClient(app) as client, client.stream("GET", "/held") as answer:
        parts = answer.iter_bytes()
        assert next(parts) == b"first"  # would hang if the answer were read whole first
        client.portal.call(released.set)  # type: ignore[union-attr]
        assert b"".join(parts) == b"second"


def test_redirects_are_followed() -> None:
    with TestClient(app) as client:
        answer = client.get("/redirect")
    assert answer.status_code == 201 and answer.json()["query"] == "after=redirect"


def test_an_app_error_is_raised_or_answered_500() -> None:
    with TestClient(app) as client, pytest.raises(RuntimeError, match="boom"):
        client.get("/boom")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
