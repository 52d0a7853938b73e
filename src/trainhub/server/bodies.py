"""Reading request bodies with limits: size caps, an idle deadline between chunks, JSON rules.

uvicorn has no deadline for reading a body (docs/security.md §2.6), so every body read here waits at
most `idle_timeout_s` for the next chunk and gives up with 408.
"""

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from trainhub.server.errors import (
    BadRequestError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnsupportedMediaTypeError,
)

BATCH_BYTES = 512 * 1024


def declared_length(request: Request) -> int | None:
    """Return the Content-Length header as an int, None when absent; 400 when malformed."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadRequestError("Content-Length must be a whole number of bytes")
    return int(raw)


def check_declared_length(request: Request, max_bytes: int) -> None:
    """Refuse with 413 before reading when the declared body is larger than `max_bytes`."""
    length = declared_length(request)
    if length is not None and length > max_bytes:
        raise PayloadTooLargeError(
            f"request body of {length} bytes is larger than this server's limit of {max_bytes} "
            "bytes; ask the operator to raise TRAINHUB_MAX_UPLOAD_BYTES"
        )


async def iter_body(
    request: Request, max_bytes: int, idle_timeout_s: float
) -> AsyncIterator[bytes]:
    """Yield the body's chunks; 413 past `max_bytes`, 408 when no chunk arrives in time."""
    check_declared_length(request, max_bytes)
    stream = request.stream().__aiter__()
    received = 0
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout=idle_timeout_s)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"no data for {idle_timeout_s:.0f} s; the upload was abandoned, send it again"
            ) from exc
        received += len(chunk)
        if received > max_bytes:
            raise PayloadTooLargeError(
                f"request body is larger than this server's limit of {max_bytes} bytes"
            )
        if chunk:
            yield chunk


async def in_batches(
    chunks: AsyncIterator[bytes], size: int = BATCH_BYTES
) -> AsyncIterator[list[bytes]]:
    """Group `chunks` into lists of at least `size` bytes (the last may hold fewer).

    Writing and hashing a group happens in a worker thread (hashlib and file writes release the
    GIL), so a large upload costs the event loop one hand-off per group, not CPU per 64 KiB
    chunk; the chunks are not joined, so an upload holds at most one group in memory. When
    `chunks` fails, the chunks already received are yielded before the error is raised, so a
    resumable upload keeps them.
    """
    batch: list[bytes] = []
    held = 0
    try:
        async for chunk in chunks:
            batch.append(chunk)
            held += len(chunk)
            if held >= size:
                yield batch
                batch, held = [], 0
    except Exception:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON here")


def _finite_float(text: str) -> float:
    # 1e999 parses as infinity: stored, it makes every later response a 500 (docs/security.md §2.5)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range for a JSON number")
    return value


async def read_json(
    request: Request, max_bytes: int, idle_timeout_s: float, *, allow_constants: bool = False
) -> Any:
    """Return the parsed JSON body; it must be sent as application/json (docs/security.md §2.4)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaTypeError("send the body as JSON with Content-Type: application/json")
    body = b"".join([chunk async for chunk in iter_body(request, max_bytes, idle_timeout_s)])
    if not body.strip():
        raise BadRequestError("the request body is empty; send a JSON object")
    try:
        if allow_constants:  # NaN/Infinity: the caller normalises them (docs/security.md §2.5)
            return json.loads(body)
        return json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from exc


async def read_json_object(
    request: Request, max_bytes: int, idle_timeout_s: float, *, allow_constants: bool = False
) -> dict[str, Any]:
    """Return the JSON body, which must be an object."""
    value = await read_json(request, max_bytes, idle_timeout_s, allow_constants=allow_constants)
    if not isinstance(value, dict):
        raise BadRequestError("the body must be a JSON object")
    return value


async def json_object(request: Request) -> dict[str, Any]:
    """Dependency: the request's JSON object body, read with the server's limits."""
    settings = request.app.state.settings
    return await read_json_object(request, settings.max_json_bytes, settings.body_idle_timeout_s)


async def lenient_json_object(request: Request) -> dict[str, Any]:
    """Dependency: like `json_object`, but NaN and Infinity literals are accepted (metrics)."""
    settings = request.app.state.settings
    return await read_json_object(
        request, settings.max_json_bytes, settings.body_idle_timeout_s, allow_constants=True
    )


def json_body_schema(
    schema: dict[str, Any] | None = None, *, required: bool = True
) -> dict[str, Any]:
    """Return `openapi_extra` that documents a JSON request body (read by `json_object`)."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema or {"type": "object"}}},
        }
    }


async def optional_json_object(request: Request) -> dict[str, Any]:
    """Dependency: the JSON object body, or {} when the request has no body at all."""
    if declared_length(request) in (None, 0) and "content-type" not in request.headers:
        return {}
    return await json_object(request)
