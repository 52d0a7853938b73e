"""Reading request bodies with limits: size caps, deadlines, and the one gate for JSON text.

uvicorn has no deadline for reading a body (docs/security.md §2.6), so every body read here waits
at most `idle_timeout_s` for the next chunk and at most `deadline_s` for the whole body, and gives
up with 408. JSON bodies pass one gate (`decode_json`): UTF-8 only, valid Unicode only (no lone
surrogates, which would be stored and then break every read that includes them), integers of at
most 20 digits, finite numbers.
"""

import asyncio
import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pydantic
from fastapi import Request

from trainhub.server.errors import (
    BadRequestError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from trainhub.server.settings import Settings
from trainhub.server.state import request_hub

M = TypeVar("M", bound=pydantic.BaseModel)
Limit = Callable[[Settings], int]

BATCH_BYTES = 512 * 1024
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() also takes "²" and "٣"
MAX_INT_DIGITS = 20
MAX_JSON_DEPTH = 32
# a JSON escape of a UTF-16 surrogate: fine in a pair, a broken string alone
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_whole_number(raw: str | None) -> int | None:
    """Return `raw` as a non-negative int if it is 1 to 18 ASCII digits, else None."""
    if raw is None or not _WHOLE_NUMBER.fullmatch(raw):
        return None
    return int(raw)


def declared_length(request: Request) -> int | None:
    """Return the Content-Length header as an int, None when absent; 400 when malformed."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    length = parse_whole_number(raw)
    if length is None:
        raise BadRequestError("Content-Length must be a whole number of bytes")
    return length


def check_declared_length(request: Request, max_bytes: int) -> None:
    """Refuse with 413 before reading when the declared body is larger than `max_bytes`."""
    length = declared_length(request)
    if length is not None and length > max_bytes:
        raise PayloadTooLargeError(
            f"request body of {length} bytes is larger than this server's limit of {max_bytes} "
            "bytes; ask the operator to raise TRAINHUB_MAX_UPLOAD_BYTES"
        )


async def iter_body(
    request: Request, max_bytes: int, idle_timeout_s: float, deadline_s: float = math.inf
) -> AsyncIterator[bytes]:
    """Yield the body's chunks; 413 past `max_bytes`, 408 when no chunk arrives in time.

    The whole body must arrive within `deadline_s`, so a client that trickles a byte just
    inside every idle timeout cannot hold a connection, a temp file and a task forever.
    """
    check_declared_length(request, max_bytes)
    stream = request.stream().__aiter__()
    received = 0
    ends_at = time.monotonic() + deadline_s
    while True:
        left_s = ends_at - time.monotonic()
        wait_s = min(idle_timeout_s, left_s)
        try:
            if left_s <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait_s):  # no task per chunk, unlike asyncio.wait_for
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            if wait_s < idle_timeout_s:
                raise RequestTimeoutError(
                    f"the request body took longer than {deadline_s:.0f} s; the upload was "
                    "abandoned, send it again over a faster connection"
                ) from exc
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

    Writing a group happens in a worker thread, and hashing it in the hashing thread (hashlib and
    file writes release the GIL; storage/spool.py), so a large upload costs the event loop one
    hand-off per group, not CPU per 64 KiB chunk; the chunks are not joined, so an upload holds
    one group in memory, and at most 2 MiB more waiting for its hash. When `chunks` fails, the
    chunks already received are yielded before the error is raised, so a resumable upload keeps
    them.
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


def _bounded_int(text: str) -> int:
    # a 400-digit integer parses, then breaks float() and every database column it meets
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"the integer {text[:24]}... has more than {MAX_INT_DIGITS} digits")
    return int(text)


def first_broken_text(value: Any) -> str | None:
    """Return the first string or key in a parsed JSON value that is not valid Unicode."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
    return None


def decode_json(body: bytes, *, allow_constants: bool = False) -> Any:
    """Parse a JSON body through the gate; BadRequestError says what is wrong.

    `allow_constants` accepts NaN and Infinity (metrics, where the stock clients send them and
    the caller turns them into null, docs/security.md §2.5); otherwise non-finite numbers are
    refused.
    """
    try:
        text = body.decode("utf-8")  # strict: UTF-8-encoded surrogates are refused here
    except UnicodeDecodeError as exc:
        raise BadRequestError("the body is not UTF-8 text; send JSON encoded as UTF-8") from exc
    try:
        if allow_constants:
            value = json.loads(text, parse_int=_bounded_int)
        else:
            value = json.loads(
                text,
                parse_constant=_reject_constant,
                parse_float=_finite_float,
                parse_int=_bounded_int,
            )
    except (ValueError, RecursionError) as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from exc
    if _SURROGATE_ESCAPE.search(text):  # rare: only then is the whole value walked
        broken = first_broken_text(value)
        if broken is not None:
            raise BadRequestError(
                f"the body holds text that is not valid Unicode ({ascii(broken)[:60]}): a "
                "lone UTF-16 surrogate escape such as \\ud800; send whole characters"
            )
    return value


async def read_json(
    request: Request,
    max_bytes: int,
    idle_timeout_s: float,
    *,
    allow_constants: bool = False,
    deadline_s: float = math.inf,
) -> Any:
    """Return the parsed JSON body; it must be sent as application/json (docs/security.md §2.4)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaTypeError("send the body as JSON with Content-Type: application/json")
    chunks = iter_body(request, max_bytes, idle_timeout_s, deadline_s)
    body = b"".join([chunk async for chunk in chunks])
    if not body.strip():
        raise BadRequestError("the request body is empty; send a JSON object")
    return decode_json(body, allow_constants=allow_constants)


async def read_json_object(
    request: Request, *, allow_constants: bool = False, limit: Limit | None = None
) -> dict[str, Any]:
    """Return the JSON body, which must be an object, read with the server's limits.

    `limit` picks the size limit from the settings (default: `max_json_bytes`).
    """
    settings = request_hub(request).settings
    value = await read_json(
        request,
        (limit or _default_limit)(settings),
        settings.body_idle_timeout_s,
        allow_constants=allow_constants,
        deadline_s=settings.json_deadline_s,
    )
    if not isinstance(value, dict):
        raise BadRequestError("the body must be a JSON object")
    return value


def _default_limit(settings: Settings) -> int:
    return settings.max_json_bytes


async def json_object(request: Request) -> dict[str, Any]:
    """Dependency: the request's JSON object body, read with the server's limits."""
    return await read_json_object(request)


async def lenient_json_object(request: Request) -> dict[str, Any]:
    """Dependency: like `json_object`, but NaN and Infinity literals are accepted (metrics)."""
    return await read_json_object(request, allow_constants=True)


def describe_errors(exc: pydantic.ValidationError) -> str:
    """Return what is wrong with a body, field by field, for the error message."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "invalid request body: " + "; ".join(parts)


def is_deeper_than(value: Any, levels: int) -> bool:
    """Tell whether `value` nests more than `levels` objects or lists inside each other.

    Looks no further than `levels` down, so a body nested hundreds deep (which json.loads
    accepts) cannot exhaust the interpreter's recursion limit here.
    """
    if not isinstance(value, dict | list):
        return False
    if levels == 0:
        return True
    children = value.values() if isinstance(value, dict) else value
    return any(is_deeper_than(child, levels - 1) for child in children)


def validated(model: type[M], raw: object) -> M:
    """Return `raw` as a `model`; ValidationError (422) says which fields are wrong."""
    if is_deeper_than(raw, MAX_JSON_DEPTH):
        raise ValidationError(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise ValidationError(describe_errors(exc)) from exc


async def read_body(
    request: Request, model: type[M], *, lenient: bool = False, limit: Limit | None = None
) -> M:
    """Return the JSON body read through the gate, then validated as `model`.

    `lenient` accepts NaN and Infinity literals (metrics, where the stock clients send them);
    `limit` picks another size limit from the settings (the Platform endpoints allow 8 MiB).
    """
    body = await read_json_object(request, allow_constants=lenient, limit=limit)
    return validated(model, body)


def body_of(
    model: type[M], *, lenient: bool = False, limit: Limit | None = None
) -> Callable[[Request], Awaitable[M]]:
    """Return a dependency that gives `read_body(request, model, ...)`."""

    async def read(request: Request) -> M:
        return await read_body(request, model, lenient=lenient, limit=limit)

    return read


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """Return `schema` with every `#/$defs/...` reference replaced by what it names."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    return schema


def json_body_schema(
    model: type[pydantic.BaseModel] | None = None, *, required: bool = True
) -> dict[str, Any]:
    """Return `openapi_extra` that documents a JSON request body of `model` (any object if None).

    Routes read their bodies themselves (through the gate above), so FastAPI cannot see the
    model; this puts the model's JSON schema, self-contained, into the API description.
    """
    schema: dict[str, Any] = {"type": "object"}
    if model is not None:
        full = model.model_json_schema()
        schema = _inline(full, full.get("$defs", {}))
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    }


async def optional_json_object(request: Request) -> dict[str, Any]:
    """Dependency: the JSON object body, or {} when the request has no body at all."""
    if declared_length(request) in (None, 0) and "content-type" not in request.headers:
        return {}
    return await json_object(request)
