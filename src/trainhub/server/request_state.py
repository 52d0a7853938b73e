"""Dependencies for objects the app builds once at start-up (links, the job queue)."""

from typing import Annotated

from fastapi import Depends, Request

from trainhub.server.deps import OptionalUser, caller_id
from trainhub.server.jobs.queue import JobQueue
from trainhub.server.links import Links
from trainhub.server.state import request_hub


async def get_links(request: Request, user: OptionalUser) -> Links:
    """Return download links made for the API caller (they work while the caller may read)."""
    return request_hub(request).links.as_reader(caller_id(user))


LinksDep = Annotated[Links, Depends(get_links)]


async def get_queue(request: Request) -> JobQueue:
    """Return the job queue that feeds the workers."""
    return request_hub(request).queue


QueueDep = Annotated[JobQueue, Depends(get_queue)]
