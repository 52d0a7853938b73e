"""Request-body helpers that do not need a server."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from trainhub.server.bodies import in_batches


async def chunks(*pieces: bytes, then: Exception | None = None) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
    if then is not None:
        raise then


async def collect(source: AsyncIterator[bytes], seen: list[bytes]) -> None:
    async for batch in in_batches(source, size=10):
        seen.append(b"|".join(batch))


def test_chunks_are_grouped_into_batches_of_at_least_the_size() -> None:
    seen: list[bytes] = []
    asyncio.run(collect(chunks(b"abcd", b"efgh", b"ijkl", b"mn"), seen))
    assert seen == [b"abcd|efgh|ijkl", b"mn"]


def test_bytes_received_before_a_failure_are_handed_over_before_the_error() -> None:
    seen: list[bytes] = []
    with pytest.raises(ConnectionError):
        asyncio.run(collect(chunks(b"abcdefghijk", b"lm", then=ConnectionError("cut")), seen))
    assert seen == [b"abcdefghijk", b"lm"]


def test_an_empty_body_yields_nothing() -> None:
    seen: list[bytes] = []
    asyncio.run(collect(chunks(), seen))
    assert seen == []
