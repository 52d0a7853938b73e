"""A model's references (dataset, project, parent) are shown and linked only to who may read them.

The matrix: each reference kind x {own, other's public, other's private, went private later,
deleted} x {owner, other user, anonymous}. The model is public, so all three readers read it; what
each sees of the object it names depends on that object alone, now. A download link handed out
while the object was readable stops working once it is not.

A model is linked into a project only by the project's owner (it is a write to the project), so
for projects "other's" cases use the model owner's own project: public, then private or deleted.
"""

from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.factories import (
    Users,
    create_dataset,
    create_model,
    error,
    local_path,
    ok,
    upload_weights,
    weights_file,
)
from tests.integration.test_web import sign_in
from tests.testclient import TestClient

SECRET_NAME = "hidden-name-7f3a"
READERS = ("owner", "other", "anonymous")
CASES = [
    (kind, state)
    for kind in ("dataset", "project", "parent")
    for state in ("own", "others_public", "went_private", "deleted")
]


@dataclass
class Target:
    id: str
    owner: str  # "owner" (the model's owner, alice) or "other" (bob)
    public: bool
    deleted: bool = False
    new_version: bool = False  # a new file version makes every older link stale

    def readable_by(self, reader: str) -> bool:
        return not self.deleted and (self.public or reader == self.owner)


def _create_target(kind: str, client: TestClient, tmp_path: Path, public: bool) -> str:
    if kind == "dataset":
        return create_dataset(client, SECRET_NAME, public=public)
    if kind == "project":
        body = {"meta": {"name": SECRET_NAME}, "public": public}
        return str(ok(client.post("/v1/projects", json=body))["id"])
    parent = create_model(client, meta={"name": SECRET_NAME}, public=public)
    path, _ = weights_file(tmp_path / "parent.pt")
    ok(upload_weights(client, parent, path, final=True))
    return parent


def _reference(kind: str, target_id: str) -> dict[str, object]:
    if kind == "dataset":
        return {"datasetId": target_id}
    if kind == "project":
        return {"projectId": target_id}
    return {"lineage": {"parent": {"id": target_id}}}


def _collection(kind: str) -> str:
    return {"dataset": "datasets", "project": "projects", "parent": "models"}[kind]


def _link(kind: str, record: dict[str, object]) -> str | None:
    """Return the download link a model record hands out for its target, if any."""
    field = {"dataset": "data", "parent": "weights"}.get(kind)
    value = record.get(field) if field else None
    return value if isinstance(value, str) and "/files/" in value else None


def _set_up(
    kind: str, state: str, alice: TestClient, bob: TestClient, tmp_path: Path
) -> tuple[str, Target, dict[str, str]]:
    """Return the public model of alice, its target, and links taken while it was readable."""
    other_owned = state != "own" and kind != "project"
    target_client = bob if other_owned else alice
    starts_public = state != "own"
    target = Target(
        _create_target(kind, target_client, tmp_path, starts_public),
        "other" if other_owned else "owner",
        starts_public,
    )
    model_id = create_model(alice, public=True, **_reference(kind, target.id))
    early: dict[str, str] = {}
    if kind != "project":
        for reader, client in (("owner", alice), ("other", bob)):
            link = _link(kind, ok(client.get(f"/v1/models/{model_id}")))
            if link and target.readable_by(reader):
                early[reader] = link
    path = f"/v1/{_collection(kind)}/{target.id}"
    if state == "went_private":
        ok(target_client.patch(path, json={"public": False}))
        target.public = False
        if kind == "dataset":  # a version uploaded after it went private must not leak either
            create_again = target_client.post(
                f"{path}/upload", files={"v2.zip": ("v2.zip", _archive("v2"))}
            )
            ok(create_again)
            target.new_version = True
    if state == "deleted":
        ok(target_client.delete(path))
        target.deleted = True
    return model_id, target, early


def _reveals(kind: str, record: dict[str, object], target_id: str) -> bool:
    """Tell whether a model record names or links its target."""
    id_field = {"dataset": "datasetId", "project": "projectId"}.get(kind)
    named = id_field is not None and record.get(id_field) == target_id
    return named or SECRET_NAME in repr(record) or _link(kind, record) is not None


def _archive(name: str) -> bytes:
    from tests.factories import dataset_zip

    return dataset_zip(name)


@pytest.mark.parametrize(("kind", "state"), CASES)
def test_a_reference_is_shown_only_to_readers_of_its_object(
    app: FastAPI,
    users: Users,
    alice: TestClient,
    bob: TestClient,
    anon: TestClient,
    tmp_path: Path,
    kind: str,
    state: str,
) -> None:
    model_id, target, early = _set_up(kind, state, alice, bob, tmp_path)
    clients = {"owner": alice, "other": bob, "anonymous": anon}
    for reader, client in clients.items():
        record = ok(client.get(f"/v1/models/{model_id}"))
        listed = ok(client.get("/v1/models", params={"public": True, "limit": 100}))["results"]
        (in_list,) = [r for r in listed if r["id"] == model_id]
        for shown in (record, in_list):
            assert _reveals(kind, shown, target.id) == target.readable_by(reader), (reader, shown)
            link = _link(kind, shown)
            if link is not None:
                assert target.readable_by(reader)
                assert client.get(local_path(link)).status_code == 200
    for reader, link in early.items():
        status = anon.get(local_path(link)).status_code
        works = target.readable_by(reader) and not target.new_version
        assert status == (200 if works else 404), (reader, link)


@pytest.mark.parametrize(("kind", "state"), CASES)
def test_the_dashboard_names_a_reference_only_to_readers_of_its_object(
    app: FastAPI,
    users: Users,
    alice: TestClient,
    bob: TestClient,
    tmp_path: Path,
    kind: str,
    state: str,
) -> None:
    model_id, target, _ = _set_up(kind, state, alice, bob, tmp_path)
    for reader, key in (("owner", users.alice.key), ("other", users.bob.key)):
        with sign_in(app, key) as browser:
            pages = [
                browser.get(f"/models/{model_id}").text,
                browser.get("/models", params={"scope": "public"}).text,
            ]
        if not target.readable_by(reader):
            assert not any(SECRET_NAME in html for html in pages), (reader, kind, state)
        elif kind != "parent":  # the page names the dataset and project it links
            assert SECRET_NAME in pages[0], (reader, kind, state)


def test_another_users_private_object_cannot_be_referenced(
    alice: TestClient, bob: TestClient, tmp_path: Path
) -> None:
    for kind in ("dataset", "parent"):
        private = _create_target(kind, bob, tmp_path, public=False)
        error(alice.post("/v1/models", json=_reference(kind, private)), 404)
        mine = create_model(alice)
        error(alice.patch(f"/v1/models/{mine}", json=_reference(kind, private)), 404)
    project = _create_target("project", bob, tmp_path, public=True)
    error(alice.post("/v1/models", json=_reference("project", project)), 403)
