"""Small factories for test data: users with keys, models, metrics, weights files, archives."""

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tests.testclient import TestClient
from trainhub.server.db import users as user_queries
from trainhub.server.db.engine import Database


@dataclass(frozen=True)
class User:
    id: str
    name: str
    key: str


@dataclass(frozen=True)
class Users:
    alice: User
    bob: User


def create_users(db: Database) -> Users:
    """Create alice (admin) and bob, each with a key."""
    made = {}
    with db.write() as session:
        for name, admin in (("alice", True), ("bob", False)):
            row, key = user_queries.create_user(session, name, admin=admin)
            made[name] = User(row.id, name, key)
    return Users(**made)


def ok(response: Any) -> Any:
    """Assert a 2xx JSON answer with success true and return its data."""
    assert 200 <= response.status_code < 300, response.text
    body = response.json()
    assert body["success"] is True, body
    return body.get("data")


def error(response: Any, status: int) -> str:
    """Assert an ErrorBody answer with `status` and return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and isinstance(body["message"], str) and body["message"], body
    return str(body["message"])


def local_path(url: str) -> str:
    """Return the path of a URL the in-process app printed, for a TestClient request."""
    return url.removeprefix("http://testserver")


def published_name(url: str) -> str:
    """Return the versioned file name at the end of a signed download URL.

    The token in front of it carries an expiry in whole seconds, so two reads of one record a
    second apart sign the same file differently; the name is what identifies the version.
    """
    return url.rsplit("/", 1)[1]


def create_model(client: TestClient, **doc: Any) -> str:
    """Create a model (hub-sdk style payload) and return its id."""
    body = {
        "meta": {"name": "m"},
        "config": {"epochs": 3, "imageSize": 64, "batchSize": 4},
        "lineage": {"architecture": {"name": "yolo11n"}},
        **doc,
    }
    return str(ok(client.post("/v1/models", json=body))["id"])


def epoch_metrics(epoch: int, **values: float) -> dict[str, str]:
    """Return one epoch of a metrics upload, encoded as the stock clients do."""
    return {str(epoch): json.dumps(values or {"train/box_loss": 1.0 / (epoch + 1)})}


def weights_file(path: Path, size: int = 4096) -> tuple[Path, str]:
    """Write a random 'checkpoint' of `size` bytes; return its path and sha256."""
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def upload_weights(
    client: TestClient,
    model_id: str,
    path: Path,
    *,
    final: bool = False,
    epoch: int = 0,
    **fields: str,
) -> Any:
    """POST weights the way hub-sdk does: fields plus one file part last.pt or best.pt."""
    part = "best.pt" if final else "last.pt"
    data = {"epoch": str(epoch), "type": "final" if final else "epoch", **fields}
    data.setdefault("map" if final else "isBest", "0.5" if final else "True")
    with path.open("rb") as file:
        return client.post(f"/v1/models/{model_id}/upload", data=data, files={part: (part, file)})


DATASET_YAML = "train: images/train\nval: images/val\nnames:\n  0: box\n"


def dataset_zip(name: str = "shapes", yaml_text: str = DATASET_YAML) -> bytes:
    """Return a small detect-layout dataset archive `<name>/<name>.yaml` + images + labels."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/{name}.yaml", yaml_text)
        for split in ("train", "val"):
            archive.writestr(f"{name}/images/{split}/a.png", b"\x89PNG\r\n\x1a\n" + os.urandom(64))
            archive.writestr(f"{name}/labels/{split}/a.txt", "0 0.5 0.5 0.2 0.2\n")
    return buffer.getvalue()


PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201"
    "a5d9e1e80000000049454e44ae426082"
)


def revoke_key(app: FastAPI, user: User) -> None:
    """Revoke `user`'s key: every later request that sends it gets 401.

    Like the API's revocation, it also drops the key from the app's key cache (in-process tests
    have no second process that would refuse it within a second).
    """
    from trainhub.protocol.ids import key_prefix
    from trainhub.server.state import hub_state

    hub = hub_state(app)
    with hub.db.write() as session:
        revoked = user_queries.revoke_key(session, user.id, key_prefix(user.key))
    assert revoked is not None, f"{user.name} has no key to revoke"
    hub.keys.forget(key_id=revoked.id)


def stored_blobs(data_dir: Path) -> list[Path]:
    """Return every file under the local storage folder, temp uploads in tmp/ included."""
    return sorted(path for path in (data_dir / "blobs").rglob("*") if path.is_file())


def multipart_body(
    boundary: str, fields: dict[str, str], files: dict[str, bytes] | None = None
) -> bytes:
    """Return a complete multipart/form-data body: text fields, then file parts named as files."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, data in (files or {}).items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"'
        parts.append(head.encode() + b"\r\n\r\n" + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def create_dataset(client: TestClient, name: str = "shapes", **doc: Any) -> str:
    """Create a dataset with an uploaded archive `<name>.zip` and return its id."""
    filename = f"{name}.zip"
    body = {"meta": {"name": name}, "filename": filename, **doc}
    dataset_id = str(ok(client.post("/v1/datasets", json=body))["id"])
    archive = dataset_zip(name)
    ok(client.post(f"/v1/datasets/{dataset_id}/upload", files={filename: (filename, archive)}))
    return dataset_id
