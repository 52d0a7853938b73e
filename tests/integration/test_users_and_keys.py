"""`POST /v1/auth`, users and API keys (`/v1/keys`).

See docs/protocol/hub-v1.md §4, §5.20, §5.23 and §16.8.
"""

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tests.blobs import stored_files
from tests.factories import (
    PNG_1PX,
    Users,
    create_model,
    dataset_zip,
    error,
    ok,
    upload_weights,
    weights_file,
)
from tests.testclient import TestClient
from trainhub.server.settings import Settings

UNKNOWN_KEY = "ul" + "0" * 40


def auth(client: TestClient, headers: dict[str, str] | None = None) -> Any:
    """POST /v1/auth with exactly `headers` as credentials."""
    return client.post("/v1/auth", headers=headers or {})


def revoke(client: TestClient, key_id: str) -> Any:
    return ok(client.delete(f"/v1/keys/{key_id}"))


def key_id_of(client: TestClient, key: str) -> str:
    """Return the id of one of the caller's keys, found by its prefix."""
    listed = ok(client.get("/v1/keys"))
    return next(k["id"] for k in listed if key.startswith(k["prefix"]))


# --- POST /v1/auth ---


@pytest.mark.parametrize(
    "header",
    [
        lambda key: {"x-api-key": key},
        lambda key: {"authorization": f"Bearer {key}"},
        lambda key: {"x-api-key": "ul_" + key[2:]},
        lambda key: {"authorization": "Bearer ul_" + key[2:]},
    ],
    ids=["x-api-key", "bearer", "ul_-spelling", "bearer-ul_-spelling"],
)
def test_auth_accepts_a_valid_key_in_either_header_and_either_spelling(
    anon, users: Users, header
) -> None:
    data = ok(auth(anon, header(users.alice.key)))
    assert data["userId"] == users.alice.id
    assert data["name"] == "alice"
    assert data["isAdmin"] is True


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": ""},
        {"x-api-key": UNKNOWN_KEY},
        {"x-api-key": "not-a-key"},
        {"x-api-key": "ul" + "G" * 40},
        {"authorization": f"Bearer {UNKNOWN_KEY}"},
        {"authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"authorization": "Bearer"},
    ],
    ids=["missing", "empty", "unknown", "malformed", "not-hex", "bearer-unknown", "basic", "bare"],
)
def test_auth_answers_json_success_false_with_401_for_bad_credentials(anon, headers) -> None:
    response = auth(anon, headers)
    error(response, 401)
    assert response.headers["content-type"] == "application/json"


def test_bearer_takes_precedence_over_x_api_key(anon, users: Users) -> None:
    both = {"authorization": f"Bearer {users.bob.key}", "x-api-key": users.alice.key}
    assert ok(auth(anon, both))["name"] == "bob"


def test_a_revoked_key_gets_401_on_auth_and_everywhere_else(alice, anon, users: Users) -> None:
    new = ok(alice.post("/v1/keys", json={"name": "laptop"}))
    headers = {"x-api-key": new["key"]}
    ok(auth(anon, headers))
    revoke(alice, new["id"])
    error(auth(anon, headers), 401)
    error(anon.get("/v1/models", headers=headers), 401)
    error(anon.post("/v1/models", json={"meta": {"name": "m"}}, headers=headers), 401)
    error(auth(anon, {"x-api-key": "ul_" + new["key"][2:]}), 401)
    ok(auth(anon, {"x-api-key": users.alice.key}))


# --- keys ---


def test_the_key_list_shows_prefixes_never_keys(alice, users: Users) -> None:
    listed = ok(alice.get("/v1/keys"))
    assert len(listed) == 1
    assert listed[0]["prefix"] == users.alice.key[:8]
    assert listed[0]["key"] is None
    assert users.alice.key not in alice.get("/v1/keys").text


def test_a_created_key_is_shown_once_and_works(alice, anon, users: Users) -> None:
    created = ok(alice.post("/v1/keys", json={"name": "ci"}))
    key = created["key"]
    assert key.startswith("ul")
    assert len(key) == 42
    assert "_" not in key
    assert created["prefix"] == key[:8]
    assert created["name"] == "ci"
    listed = alice.get("/v1/keys")
    assert key not in listed.text
    assert {k["prefix"] for k in ok(listed)} == {key[:8], users.alice.key[:8]}
    assert ok(auth(anon, {"x-api-key": key}))["userId"] == users.alice.id


def test_a_key_can_be_created_without_a_body(alice, anon) -> None:
    created = ok(alice.post("/v1/keys"))
    assert created["name"] == ""
    ok(auth(anon, {"x-api-key": created["key"]}))


def test_a_key_name_must_be_a_string(alice) -> None:
    error(alice.post("/v1/keys", json={"name": 5}), 422)


def test_revoking_marks_the_key_revoked_in_the_list(alice) -> None:
    created = ok(alice.post("/v1/keys", json={"name": "old"}))
    revoked = revoke(alice, created["id"])
    assert revoked["revokedAt"] is not None
    assert revoked["key"] is None
    listed = {k["id"]: k for k in ok(alice.get("/v1/keys"))}
    assert listed[created["id"]]["revokedAt"] is not None


def test_a_key_can_revoke_itself(anon, alice) -> None:
    created = ok(alice.post("/v1/keys"))
    headers = {"x-api-key": created["key"]}
    ok(anon.delete(f"/v1/keys/{created['id']}", headers=headers))
    error(auth(anon, headers), 401)


def test_nobody_can_revoke_another_users_key(alice, bob, anon, users: Users) -> None:
    alice_key_id = key_id_of(alice, users.alice.key)
    error(bob.delete(f"/v1/keys/{alice_key_id}"), 404)
    error(bob.delete(f"/v1/keys/{users.alice.key[:8]}"), 404)
    error(anon.delete(f"/v1/keys/{alice_key_id}"), 401)
    ok(auth(anon, {"x-api-key": users.alice.key}))


def test_revoking_an_unknown_key_is_404(alice) -> None:
    error(alice.delete("/v1/keys/AAAAAAAAAAAAAAAAAAAA"), 404)


# --- users ---


def test_the_admin_lists_every_user(alice, users: Users) -> None:
    listed = ok(alice.get("/v1/users"))
    assert {u["meta"]["name"] for u in listed} == {"alice", "bob"}
    assert all(u.get("apiKey") is None for u in listed)


def test_a_created_user_gets_a_key_shown_once_that_works(alice, anon) -> None:
    created = ok(alice.post("/v1/users", json={"meta": {"name": "carol"}}))
    assert created["meta"]["name"] == "carol"
    assert created["is_admin"] is False
    key = created["apiKey"]
    assert ok(auth(anon, {"x-api-key": key}))["userId"] == created["id"]
    read = ok(alice.get(f"/v1/users/{created['id']}"))
    assert read["meta"]["name"] == "carol"
    assert read.get("apiKey") is None
    assert key not in alice.get("/v1/users").text


def test_creating_a_user_checks_the_name(alice) -> None:
    error(alice.post("/v1/users", json={"name": "bob"}), 409)
    error(alice.post("/v1/users", json={"name": "../etc"}), 422)
    error(alice.post("/v1/users", json={"name": ""}), 422)
    error(alice.post("/v1/users", json={"name": "dave", "is_admin": "yes"}), 422)


def test_the_admin_renames_a_user_and_makes_them_admin(alice, anon) -> None:
    created = ok(alice.post("/v1/users", json={"name": "carol"}))
    renamed = ok(alice.patch(f"/v1/users/{created['id']}", json={"meta": {"name": "caroline"}}))
    assert renamed["meta"]["name"] == "caroline"
    assert ok(alice.patch(f"/v1/users/{created['id']}", json={"is_admin": True}))["is_admin"]
    with_key = {"x-api-key": created["apiKey"]}
    assert ok(anon.get("/v1/users", headers=with_key))


def test_a_user_reads_and_renames_themselves_but_not_others(bob, users: Users) -> None:
    assert ok(bob.get(f"/v1/users/{users.bob.id}"))["meta"]["name"] == "bob"
    error(bob.get(f"/v1/users/{users.alice.id}"), 404)
    renamed = ok(bob.patch(f"/v1/users/{users.bob.id}", json={"name": "robert"}))
    assert renamed["meta"]["name"] == "robert"
    error(bob.patch(f"/v1/users/{users.alice.id}", json={"name": "eve"}), 404)


def test_a_user_who_is_not_admin_gets_403_on_admin_routes(bob, users: Users) -> None:
    error(bob.get("/v1/users"), 403)
    error(bob.post("/v1/users", json={"name": "mallory"}), 403)
    error(bob.delete(f"/v1/users/{users.alice.id}"), 403)
    error(bob.delete(f"/v1/users/{users.bob.id}"), 403)
    error(bob.patch(f"/v1/users/{users.bob.id}", json={"is_admin": True}), 403)


def test_an_admin_cannot_delete_or_demote_themselves(alice, users: Users) -> None:
    error(alice.delete(f"/v1/users/{users.alice.id}"), 422)
    error(alice.patch(f"/v1/users/{users.alice.id}", json={"is_admin": False}), 422)


def start_resumable_upload(client: TestClient, model_id: str) -> None:
    """Start a tus upload of 100 bytes and send the first 10."""
    tus = {"Tus-Resumable": "1.0.0"}
    metadata = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in {"modelId": model_id, "type": "epoch", "epoch": "3"}.items()
    )
    created = client.post(
        "/v1/uploads", headers={**tus, "Upload-Length": "100", "Upload-Metadata": metadata}
    )
    assert created.status_code == 201, created.text
    patched = client.patch(
        created.headers["location"].removeprefix("http://testserver"),
        content=b"0123456789",
        headers={**tus, "Upload-Offset": "0", "content-type": "application/offset+octet-stream"},
    )
    assert patched.status_code == 204, patched.text


def test_deleting_a_user_removes_their_objects_keys_and_blobs(
    app: FastAPI, alice, bob, anon, settings: Settings, tmp_path: Path
) -> None:
    created = ok(alice.post("/v1/users", json={"name": "carol"}))
    with TestClient(app, headers={"x-api-key": created["apiKey"]}) as carol:
        model_id = create_model(carol)
        ok(upload_weights(carol, model_id, weights_file(tmp_path / "last.pt")[0], epoch=0))
        ok(upload_weights(carol, model_id, weights_file(tmp_path / "best.pt")[0], final=True))
        dataset_id = ok(carol.post("/v1/datasets", json={"meta": {"name": "s"}}))["id"]
        name = "shapes.zip"
        ok(carol.post(f"/v1/datasets/{dataset_id}/upload", files={name: (name, dataset_zip())}))
        project_id = ok(carol.post("/v1/projects", json={"meta": {"name": "p"}}))["id"]
        ok(carol.post(f"/v1/projects/{project_id}/upload", files={"file": ("c.png", PNG_1PX)}))
        start_resumable_upload(carol, model_id)
    bob_model = create_model(bob)
    assert len(stored_files(settings)) == 5
    ok(alice.delete(f"/v1/users/{created['id']}"))
    assert stored_files(settings) == set()
    error(alice.get(f"/v1/users/{created['id']}"), 404)
    error(alice.get(f"/v1/models/{model_id}"), 404)
    error(auth(anon, {"x-api-key": created["apiKey"]}), 401)
    ok(bob.get(f"/v1/models/{bob_model}"))


def test_deleting_an_unknown_user_is_404(alice) -> None:
    error(alice.delete("/v1/users/AAAAAAAAAAAAAAAAAAAA"), 404)
