"""Metrics uploads that arrive together are written together (group commit), each exactly once.

Uploads are sent concurrently at the ASGI level, so the writer finds several waiting and writes
them in one transaction: uploads for several models, two uploads of the same epoch (the later
values win), epochs already stored (they merge), and one refused upload among good ones.
"""

import asyncio
import json

from fastapi import FastAPI

from tests.asgi import call
from tests.factories import Users, create_model, ok
from tests.testclient import TestClient


def series(client: TestClient, model_id: str) -> dict[str, dict[str, float]]:
    data = ok(client.get(f"/v1/models/{model_id}/metrics"))
    return {s["meta"]["name"]: s["data"] for s in data}


def test_concurrent_uploads_of_several_models_are_each_stored_once(
    app: FastAPI, alice: TestClient, bob: TestClient, users: Users
) -> None:
    models = [create_model(alice) for _ in range(4)]
    ok(alice.post(f"/v1/models/{models[0]}", json={"metrics": {"0": json.dumps({"a": 1.0})}}))
    private_of_bob = create_model(bob)
    headers = {"x-api-key": users.alice.key, "content-type": "application/json"}

    def upload(model_id: str, epochs: dict[int, dict[str, float]]) -> object:
        body = {"metrics": {str(e): json.dumps(v) for e, v in epochs.items()}}
        return call(app, "POST", f"/v1/models/{model_id}", headers, [json.dumps(body).encode()])

    async def together() -> list[object]:
        return await asyncio.gather(
            *(upload(m, {e: {"loss": e + i / 10} for e in range(5)}) for i, m in enumerate(models)),
            upload(models[0], {0: {"b": 2.0}}),  # epoch 0 was stored before: it merges
            upload(models[1], {9: {"x": 1.0}}),
            upload(models[1], {9: {"x": 2.0}}),  # the same epoch twice in one batch
            upload(private_of_bob, {0: {"loss": 1.0}}),  # refused, the others still stored
        )

    answers = asyncio.run(together())
    statuses = [a.status for a in answers]  # type: ignore[attr-defined]
    assert statuses == [200] * 7 + [404], statuses
    for i, model_id in enumerate(models):
        assert series(alice, model_id)["loss"] == {str(e): e + i / 10 for e in range(5)}
        assert ok(alice.get(f"/v1/models/{model_id}"))["status"] == "training"
    first = series(alice, models[0])
    assert first["a"] == {"0": 1.0} and first["b"] == {"0": 2.0}
    assert series(alice, models[1])["x"]["9"] in (1.0, 2.0)
    assert ok(alice.get(f"/v1/models/{models[1]}"))["epoch"] == 9
    assert series(bob, private_of_bob) == {}
