"""A JSON serializer for huey: the queue carries ids and plain values, never pickles.

huey pickles its messages by default, and unpickling runs code: anyone who can write to the queue
(a shared Redis, the queue file) could run code in every worker and in the server reading results.
This serializer writes huey's message tuple, its error records and datetimes as tagged JSON and
refuses anything else, so a job's arguments and results are JSON by construction.
"""

import json
from datetime import datetime
from typing import Any

from huey.registry import Message
from huey.serializer import Serializer
from huey.utils import Error

MESSAGE_TAG = "$huey.message"
ERROR_TAG = "$huey.error"
DATETIME_TAG = "$datetime"
TAGS = (MESSAGE_TAG, ERROR_TAG, DATETIME_TAG)


def encode(value: Any) -> Any:
    """Return `value` as JSON-ready data; TypeError for a type the queue does not carry."""
    if isinstance(value, Message):
        return {MESSAGE_TAG: [encode(item) for item in value]}
    if isinstance(value, Error):
        return {ERROR_TAG: encode(value.metadata)}
    if isinstance(value, datetime):
        return {DATETIME_TAG: value.isoformat()}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("the job queue carries JSON objects with string keys only")
        return {key: encode(item) for key, item in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"the job queue carries JSON values only, not {type(value).__name__}")


def decode(value: Any) -> Any:
    """Return the value `encode` was given (tuples come back as lists)."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        tag, inner = next(iter(value.items()))
        if tag == MESSAGE_TAG:
            return Message(*[decode(item) for item in inner])
        if tag == ERROR_TAG:
            return Error(decode(inner))
        if tag == DATETIME_TAG:
            return datetime.fromisoformat(inner)
    return {key: decode(item) for key, item in value.items()}


class JsonSerializer(Serializer):  # type: ignore[misc]  # huey has no type hints
    """huey's serializer, JSON in place of pickles."""

    def _serialize(self, data: Any) -> bytes:
        return json.dumps(encode(data), separators=(",", ":"), allow_nan=False).encode()

    def _deserialize(self, data: bytes) -> Any:
        return decode(json.loads(data))
