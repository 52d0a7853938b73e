"""JSON answers of the hot paths, encoded with orjson and sent as they are.

FastAPI validates and re-encodes what a route returns through its response model; the routes
that a trainer calls every epoch or beat build their small, fixed-shape answers themselves and
skip that work (their response model still documents the shape in /openapi.json).
"""

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response


def fast_json(
    content: Any, headers: Mapping[str, str] | None = None, status: int = 200
) -> Response:
    """Return `content` as a JSON response, with `headers` (e.g. the rate-limit ones) added."""
    return Response(
        orjson.dumps(content),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )
