"""Dependencies for objects the app builds once at start-up (links, rate limiter)."""

from typing import Annotated

from fastapi import Depends, Request

from trainhub.server.links import Links


def get_links(request: Request) -> Links:
    return request.app.state.links  # type: ignore[no-any-return]


LinksDep = Annotated[Links, Depends(get_links)]
