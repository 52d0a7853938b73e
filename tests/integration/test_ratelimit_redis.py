"""Replicas share rate-limit counters through Redis (TRAINHUB_REDIS_URL)."""

from pathlib import Path

from tests.conftest import make_settings
from tests.factories import create_users
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.state import hub_state

REDIS_URL = "redis://127.0.0.1:6379"


def test_two_replicas_count_one_key_together(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, rate_limit="4/minute", redis_url=REDIS_URL)
    first, second = create_app(settings), create_app(settings)
    key = create_users(hub_state(first).db).bob.key
    headers = {"x-api-key": key}
    with TestClient(first, headers=headers) as one, TestClient(second, headers=headers) as two:
        statuses = [client.post("/v1/auth").status_code for client in (one, two, one, two, one)]
        refused = two.post("/v1/auth")
    for app in (first, second):
        hub_state(app).db.dispose()
    assert statuses == [200, 200, 200, 200, 429]
    assert refused.status_code == 429
    assert refused.json()["success"] is False
    assert int(refused.headers["Retry-After"]) >= 1
