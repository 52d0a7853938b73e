"""Owner-written JSON documents of models, datasets and projects: validation and deep merge.

A document keeps what its owner sent (meta, config, lineage, unknown keys too, as HUB did);
the keys the server derives are refused, so a PATCH can never fake `status` or `weights`.
"""

import json
from typing import Any

from trainhub.server.bodies import is_deeper_than
from trainhub.server.errors import ValidationError

MAX_DOC_BYTES = 256 * 1024
MAX_DEPTH = 8

SERVER_KEYS = frozenset(
    {
        "id",
        "status",
        "has_last_weights",
        "has_best_weights",
        "is_pretrained",
        "is_custom",
        "cfg",
        "data",
        "weights",
        "resume",
        "train_args",
        "batch_size",
        "epochs",
        "imgsz",
        "patience",
        "device",
        "cache",
        "createdAt",
        "updatedAt",
        "owner",
        "url",
        "cover",
        "sha256",
        "size_bytes",
        "agents",
        "metrics",
        "map",
    }
)


def check_document(
    body: dict[str, Any], *, reserved: frozenset[str] = SERVER_KEYS
) -> dict[str, Any]:
    """Return `body` if it is an acceptable owner document, else raise ValidationError."""
    taken = sorted(set(body) & reserved)
    if taken:
        raise ValidationError(f"field {taken[0]!r} is set by the server and cannot be written")
    if is_deeper_than(body, MAX_DEPTH):
        raise ValidationError(f"the document is nested deeper than {MAX_DEPTH} levels")
    if len(json.dumps(body)) > MAX_DOC_BYTES:
        raise ValidationError(f"the document is larger than {MAX_DOC_BYTES} bytes")
    for key in ("meta", "config", "lineage", "dataset", "project"):
        if key in body and body[key] is not None and not isinstance(body[key], dict):
            raise ValidationError(f"field {key!r} must be an object")
    if "public" in body and not isinstance(body["public"], bool):
        raise ValidationError("field 'public' must be true or false")
    return body


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `patch` merged in: objects merge key by key, a null removes a key."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def display_name(doc: dict[str, Any], fallback: str) -> str:
    """Return meta.name of a document as a short string, or `fallback`.

    NUL characters are dropped: the name is display text, and PostgreSQL text cannot hold them.
    """
    meta = doc.get("meta")
    name = meta.get("name") if isinstance(meta, dict) else None
    text = "" if name is None else str(name).replace("\x00", "")[:200]
    return text or fallback
