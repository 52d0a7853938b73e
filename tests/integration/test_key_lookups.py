"""Key lookups under load: requests that carry the same uncached key share one database query."""

import asyncio
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event

from tests.asgi import call
from tests.factories import Users
from trainhub.server.state import hub_state


def test_concurrent_requests_with_an_uncached_key_share_one_lookup(
    app: FastAPI, users: Users
) -> None:
    hub = hub_state(app)
    lookups: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_keys" in statement:
            lookups.append(statement)

    event.listen(hub.db.reader, "before_cursor_execute", count)
    try:
        hub.keys.forget(user_id=users.alice.id)
        headers = {"x-api-key": users.alice.key}

        async def together() -> list[int]:
            answers = await asyncio.gather(
                *(call(app, "GET", "/v1/models", headers) for _ in range(30))
            )
            return [a.status for a in answers]

        statuses = asyncio.run(together())
    finally:
        event.remove(hub.db.reader, "before_cursor_execute", count)
    assert statuses == [200] * 30
    assert len(lookups) == 1, f"{len(lookups)} key lookups for 30 requests"
    assert not hub.keys.lookups, "a finished lookup was left behind"
