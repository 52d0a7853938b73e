"""`GET /metrics`: Prometheus text for the metrics token or an admin, with nothing secret in it."""

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_settings
from tests.factories import Users, create_model, ok, upload_weights, weights_file
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.settings import Settings
from trainhub.server.state import hub_state
from trainhub.server.telemetry import MetricsMiddleware, Telemetry

TOKEN = "metrics-token-" + "m" * 24


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, metrics_token=TOKEN)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of a Prometheus text page by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: TestClient) -> str:
    answer = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return answer.text


def test_only_the_metrics_token_or_an_admin_reads_metrics(anon, alice, bob, users: Users) -> None:
    assert anon.get("/metrics").status_code == 401
    assert "metrics token" in anon.get("/metrics").json()["message"]
    wrong = anon.get("/metrics", headers={"authorization": "Bearer " + "x" * 38})
    assert wrong.status_code == 401
    assert bob.get("/metrics").status_code == 403
    assert alice.get("/metrics").status_code == 200
    assert scrape(anon).startswith("# HELP")


def test_requests_are_counted_by_route_template_with_latencies_and_upload_bytes(
    alice, anon, users: Users, tmp_path: Path, settings: Settings
) -> None:
    model_id = create_model(alice)
    path, _ = weights_file(tmp_path / "w.pt", size=50_000)
    ok(upload_weights(alice, model_id, path, final=True))
    record = ok(alice.get(f"/v1/models/{model_id}"))
    assert anon.get(record["weights"]).status_code == 200
    anon.get("/no/such/path/" + model_id)
    text = scrape(anon)
    found = samples(text)
    read = ("method", "GET"), ("route", "/v1/models/{model_id}"), ("status", "200")
    assert found[("trainhub_http_requests_total", read)] == 1
    unmatched = ("method", "GET"), ("route", "unmatched"), ("status", "404")
    assert found[("trainhub_http_requests_total", unmatched)] == 1
    upload = ("route", "/v1/models/{model_id}/upload")
    assert found[("trainhub_upload_bytes_total", (upload,))] > 50_000
    count = found[
        (
            "trainhub_http_request_duration_seconds_count",
            (("method", "POST"), ("route", "/v1/models/{model_id}/upload")),
        )
    ]
    assert count == 1
    assert found[("trainhub_active_runs", ())] == 0
    # nothing that identifies a user, an object or a credential
    secret = settings.secret_key.get_secret_value() if settings.secret_key else "?"
    download_token = record["weights"].split("/files/")[1].split("/")[0]
    for value in (users.alice.key, users.bob.key, model_id, download_token, secret, TOKEN):
        assert value not in text
    assert "alice" not in text


def test_active_runs_count_models_whose_trainer_beats(alice, anon) -> None:
    beating, silent = create_model(alice), create_model(alice)
    assert silent
    for _ in range(2):  # two beats of one trainer are one run
        answer = alice.post(
            f"/v1/agent/heartbeat/models/{beating}", json={"agent": "python-3.11", "agentId": None}
        )
        assert answer.status_code == 200, answer.text
    assert samples(scrape(anon))[("trainhub_active_runs", ())] == 1


def test_open_event_streams_are_a_gauge() -> None:
    telemetry = Telemetry()
    seen: list[float] = []

    async def stream(scope, receive, send) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        seen.append(telemetry.live_streams._value.get())
        await send({"type": "http.response.body", "body": b"data: x\n\n"})

    async def request() -> None:
        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message) -> None:
            pass

        scope = {"type": "http", "method": "GET", "path": "/x"}
        await MetricsMiddleware(stream, telemetry)(scope, receive, send)

    asyncio.run(request())
    assert seen == [1.0] and telemetry.live_streams._value.get() == 0


def test_each_app_has_its_own_registry(tmp_path: Path, database_url: str) -> None:
    first = create_app(make_settings(tmp_path / "a", database_url))
    second = create_app(make_settings(tmp_path / "b", database_url))
    try:
        assert hub_state(first).telemetry.registry is not hub_state(second).telemetry.registry
    finally:
        hub_state(first).db.dispose()
        hub_state(second).db.dispose()
