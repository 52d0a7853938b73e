"""hub-sdk 0.0.25 scenarios, run in a subprocess against a live trainhub server.

Usage: python hubsdk_scenarios.py SCENARIO PARAMS_JSON

ULTRALYTICS_HUB_API and ULTRALYTICS_HUB_WEB must name the server before hub_sdk is imported (it
reads them at import time), which is why hub_sdk is only imported inside the scenarios: the test
process imports this module for its file builders without touching hub_sdk. Each scenario drives
only public hub-sdk calls and prints one JSON line on stdout, the observations the test asserts
on; hub-sdk's own log goes to stderr.
"""

import hashlib
import json
import logging
import math
import os
import struct
import sys
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

# ------------------------------------------------------------------------------------------------
# File builders (stdlib only; also used by the tests)


def png_bytes(width: int = 8, height: int = 8, seed: int = 0) -> bytes:
    """Return a valid RGB PNG image of the given size."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    rows = b"".join(
        b"\x00" + bytes((x * 31 + y * 17 + seed) % 256 for x in range(width * 3))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def write_png(path: Path, seed: int = 0) -> Path:
    """Write a small PNG to `path` and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(seed=seed))
    return path


def build_detect_zip(path: Path, name: str = "coco8", yaml_prefix: str = "") -> Path:
    """Write a tiny coco8-like detect archive: `<name>/<name>.yaml`, images and YOLO labels.

    `yaml_prefix` is put in front of the YAML (e.g. a `path:` line the server must refuse).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    yaml_text = yaml_prefix + "train: images/train\nval: images/val\nnames:\n  0: thing\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}/{name}.yaml", yaml_text)
        for seed, split in enumerate(("train", "train", "val")):
            stem = f"{split}{seed}"
            archive.writestr(f"{name}/images/{split}/{stem}.png", png_bytes(seed=seed))
            archive.writestr(f"{name}/labels/{split}/{stem}.txt", "0 0.5 0.5 0.25 0.25\n")
    return path


def sha256_file(path: Path) -> str:
    """Return the sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------
# Helpers for the scenarios


class LogCapture(logging.Handler):
    """Keeps every message hub-sdk logs, so a scenario can report what the client saw."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def count(self, text: str) -> int:
        return sum(text in message for message in self.messages)


def capture_log() -> LogCapture:
    """Attach a LogCapture to hub-sdk's logger and return it."""
    from hub_sdk.helpers.logger import logger  # type: ignore[import-untyped]

    handler = LogCapture()
    logger.addHandler(handler)
    return handler


def client(key: str) -> Any:
    """Return a hub-sdk client logged in with an API key."""
    from hub_sdk import HUBClient  # type: ignore[import-untyped]

    return HUBClient({"api_key": key})


def status(response: Any) -> int | None:
    """The HTTP status of a hub-sdk call's answer, or None when hub-sdk returned nothing."""
    return None if response is None else int(response.status_code)


def fetch(url: str) -> dict[str, Any]:
    """GET `url` with plain urllib, no auth header, as ultralytics downloads weights/datasets."""
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            body = answer.read()
            return {
                "status": answer.status,
                "sha256": hashlib.sha256(body).hexdigest(),
                "size": len(body),
                "content_length": answer.headers.get("Content-Length"),
                "content_type": answer.headers.get("Content-Type"),
            }
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read()[:500].decode(errors="replace")}
    except (urllib.error.URLError, OSError) as exc:
        return {"status": None, "error": repr(exc)}


def walk_pages(plist: Any, max_pages: int = 50) -> dict[str, Any]:
    """Walk a hub-sdk paginated list to its end with next() and back with previous()."""

    def ids() -> list[str]:
        return [item.get("id") for item in (plist.results or [])]

    forward = [ids()]
    total_pages = plist.total_pages
    for _ in range(max_pages):
        if plist.current_page >= plist.total_pages - 1:
            break
        plist.next()
        forward.append(ids())
    last_page = plist.current_page
    plist.next()  # at the end: must be a no-op
    after_end = {"page": plist.current_page, "ids": ids()}
    backward = [ids()]
    for _ in range(max_pages):
        if plist.current_page == 0:
            break
        plist.previous()
        backward.append(ids())
    return {
        "total_pages": total_pages,
        "last_page": last_page,
        "forward": forward,
        "after_end": after_end,
        "backward": backward,
    }


def all_list_ids(make_list: Callable[[], Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Every id of a hub-sdk list (all pages) and every entry."""
    plist = make_list()
    entries = list(plist.results or [])
    for _ in range(100):
        if plist.current_page >= plist.total_pages - 1:
            break
        plist.next()
        entries += list(plist.results or [])
    return [entry.get("id") for entry in entries], entries


def attempt(func: Callable[[], Any]) -> dict[str, Any]:
    """Run a hub-sdk call that may raise (some create_* do on failure) and report the outcome."""
    try:
        value = func()
    except Exception as exc:
        return {"raised": f"{type(exc).__name__}: {exc}"}
    return {"value": value}


# ------------------------------------------------------------------------------------------------
# Scenarios


MODEL_PAYLOAD: dict[str, Any] = {
    "meta": {"name": "compat-model", "description": "made by hub-sdk"},
    "config": {
        "batchSize": "8",
        "cache": "ram",
        "device": "cpu",
        "epochs": "5",
        "imageSize": "64",
        "patience": "10",
    },
    "lineage": {"architecture": {"name": "yolo11n"}, "parent": {}},
}


def new_model(hub: Any, name: str = "compat-model") -> Any:
    """Create a model with the documented hub-sdk payload and return the hub-sdk object."""
    model = hub.model()
    model.create_model({**MODEL_PAYLOAD, "meta": {**MODEL_PAYLOAD["meta"], "name": name}})
    return model


def scenario_auth(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, key in p["keys"].items():
        try:
            out[label] = {"authenticated": client(key).authenticated}
        except Exception as exc:
            out[label] = {"raised": f"{type(exc).__name__}: {exc}"}
    return out


def scenario_model_crud(p: dict[str, Any]) -> dict[str, Any]:
    hub = client(p["key"])
    model = new_model(hub)
    created = dict(model.data)
    model_id = model.id
    update = status(model.update({"meta": {"name": "renamed"}}))
    after_update = hub.model(model_id).data
    soft = status(model.delete())
    after_soft = hub.model(model_id).data

    other = new_model(hub, "hard-delete-me")
    other_created = bool(other.data)
    hard = status(other.delete(hard=True))
    after_hard = hub.model(other.id).data
    return {
        "authenticated": hub.authenticated,
        "id": model_id,
        "created": created,
        "update_status": update,
        "after_update": after_update,
        "soft_delete_status": soft,
        "after_soft_delete": after_soft,
        "other_id": other.id,
        "other_created": other_created,
        "hard_delete_status": hard,
        "after_hard_delete": after_hard,
    }


def scenario_model_pagination(p: dict[str, Any]) -> dict[str, Any]:
    alice, bob = client(p["alice"]), client(p["bob"])
    created = []
    for i in range(25):
        created.append(new_model(alice, f"page-{i:02d}").id)
        time.sleep(0.06)  # stay under the default per-key rate limit (50 requests/s)
    public_id = created[7]
    public_status = status(alice.model(public_id).update({"public": True}))
    bob_private = new_model(bob, "bob-private").id
    walk = walk_pages(alice.model_list(page_size=10))
    public_ids, public_entries = all_list_ids(lambda: bob.model_list(page_size=10, public=True))
    bob_own_ids, _ = all_list_ids(lambda: bob.model_list(page_size=10))
    return {
        "created": created,
        "public_id": public_id,
        "public_patch_status": public_status,
        "bob_private": bob_private,
        "walk": walk,
        "public_ids": public_ids,
        "public_entries_keys": [sorted(entry) for entry in public_entries],
        "bob_own_ids": bob_own_ids,
    }


def scenario_metrics(p: dict[str, Any]) -> dict[str, Any]:
    hub = client(p["key"])
    model = new_model(hub, "metrics")
    first = status(
        model.upload_metrics(
            {
                "0": json.dumps(
                    {
                        "train/box_loss": 1.5,
                        "metrics/mAP50(B)": math.nan,
                        "model/parameters": 2_590_000,
                    }
                ),
                "1": json.dumps(
                    {
                        "train/box_loss": 1.25,
                        "metrics/mAP50(B)": math.inf,
                        "val/box_loss": -math.inf,
                    }
                ),
                "2": json.dumps(
                    {"train/box_loss": 1.125, "metrics/mAP50(B)": 0.25, "val/box_loss": 0.75}
                ),
            }
        )
    )
    # A re-sent epoch merges into the stored one (docs/protocol/hub-v1.md §16.3): box_loss changes,
    # the keys missing from the re-send are kept.
    second = status(model.upload_metrics({"2": json.dumps({"train/box_loss": 1.0})}))
    metrics = hub.model(model.id).get_metrics()
    return {
        "id": model.id,
        "upload_status": [first, second],
        "metrics": metrics,
        "status": hub.model(model.id).data.get("status"),
    }


def scenario_weights(p: dict[str, Any]) -> dict[str, Any]:
    hub = client(p["key"])
    model = new_model(hub, "weights")
    checkpoint = status(model.upload_model(epoch=1, weights=p["last"], is_best=True))
    mid = hub.model(model.id)
    final = status(model.upload_model(epoch=2, weights=p["best"], map=0.5, final=True))
    done = hub.model(model.id)
    best_url, last_url = done.get_weights_url("best"), done.get_weights_url("last")
    return {
        "id": model.id,
        "checkpoint_status": checkpoint,
        "final_status": final,
        "mid": {
            "has_last_weights": mid.is_resumable(),
            "status": mid.data.get("status"),
            "resume": mid.get_weights_url("last"),
        },
        "has_last_weights": done.is_resumable(),
        "has_best_weights": done.has_best_weights(),
        "is_trained": done.is_trained(),
        "status": done.data.get("status"),
        "best_url": best_url,
        "last_url": last_url,
        "best_download": fetch(best_url) if best_url else None,
        "last_download": fetch(last_url) if last_url else None,
    }


def scenario_heartbeat(p: dict[str, Any]) -> dict[str, Any]:
    log = capture_log()
    hub = client(p["key"])
    model = new_model(hub, "heartbeat")
    seen: list[str | None] = []
    model.start_heartbeat(interval=1)
    deadline = time.monotonic() + 3.3
    while time.monotonic() < deadline:
        agent_id = model.hub_client.agent_id
        if not seen or seen[-1] != agent_id:
            seen.append(agent_id)
        time.sleep(0.05)
    model.stop_heartbeat()
    return {
        "id": model.id,
        "agent_id": model.hub_client.agent_id,
        "agent_ids_seen": seen,
        "heartbeats_sent": log.count("Heartbeat sent."),
        "agent_id_updates": log.count("Agent Id updated."),
        "errors": [m for m in log.messages if "Failed" in m or "error" in m.lower()],
    }


def scenario_datasets(p: dict[str, Any]) -> dict[str, Any]:
    hub = client(p["key"])
    dataset = hub.dataset()
    create = attempt(
        lambda: dataset.create_dataset({"meta": {"name": "coco8"}, "filename": "coco8.zip"})
    )
    upload = status(dataset.upload_dataset(p["archive"]))
    uploaded = hub.dataset(dataset.id)
    link = uploaded.get_download_link()
    download = fetch(link) if link else None
    listed_ids, listed = all_list_ids(lambda: hub.dataset_list(page_size=10))
    update = status(uploaded.update({"meta": {"name": "coco8-renamed"}}))
    renamed = hub.dataset(dataset.id).data
    delete = status(uploaded.delete(hard=True))
    after_delete = hub.dataset(dataset.id).data
    return {
        "id": dataset.id,
        "create": create,
        "created": dataset.data,
        "upload_status": upload,
        "data": uploaded.data,
        "link": link,
        "download": download,
        "listed_ids": listed_ids,
        "listed_keys": [sorted(entry) for entry in listed],
        "update_status": update,
        "renamed": renamed,
        "delete_status": delete,
        "after_delete": after_delete,
    }


def scenario_dataset_upload_only(p: dict[str, Any]) -> dict[str, Any]:
    hub = client(p["key"])
    dataset = hub.dataset()
    create = attempt(
        lambda: dataset.create_dataset(
            {"meta": {"name": p["dataset_name"]}, "filename": "coco8.zip"}
        )
    )
    upload = status(dataset.upload_dataset(p["archive"]))
    return {
        "id": dataset.id,
        "create": create,
        "upload_status": upload,
        "after": hub.dataset(dataset.id).data,
    }


def scenario_projects(p: dict[str, Any]) -> dict[str, Any]:
    hub = client(p["key"])
    project = hub.project()
    create = attempt(lambda: project.create_project({"meta": {"name": "compat-project"}}))
    read = hub.project(project.id).data
    update = status(project.update({"meta": {"name": "renamed-project"}}))
    renamed = hub.project(project.id).data
    image = status(project.upload_image(p["image"]))
    with_image = hub.project(project.id).data
    listed_ids, listed = all_list_ids(lambda: hub.project_list(page_size=10))
    delete = status(project.delete(hard=True))
    after_delete = hub.project(project.id).data
    return {
        "id": project.id,
        "create": create,
        "created": project.data,
        "read": read,
        "update_status": update,
        "renamed": renamed,
        "image_status": image,
        "with_image": with_image,
        "listed_ids": listed_ids,
        "listed_keys": [sorted(entry) for entry in listed],
        "delete_status": delete,
        "after_delete": after_delete,
    }


def scenario_user(p: dict[str, Any]) -> dict[str, Any]:
    log = capture_log()
    user = client(p["key"]).user(p["user_id"])
    return {"data": user.data, "log": log.messages}


def scenario_authz(p: dict[str, Any]) -> dict[str, Any]:
    alice, bob = client(p["alice"]), client(p["bob"])
    model = new_model(alice, "alice-private")
    model_id = model.id
    bob_view = bob.model(model_id)
    private = {
        "read": bob_view.data,
        "update": status(bob_view.update({"meta": {"name": "bob was here"}})),
        "soft_delete": status(bob_view.delete()),
        "hard_delete": status(bob_view.delete(hard=True)),
        "metrics": status(bob_view.upload_metrics({"0": json.dumps({"train/box_loss": 9.0})})),
    }
    alice_after_private = alice.model(model_id).data
    make_public = status(model.update({"public": True}))
    bob_public_view = bob.model(model_id)
    public = {
        "read": bob_public_view.data,
        "update": status(bob_public_view.update({"meta": {"name": "bob was here"}})),
        "hard_delete": status(bob_public_view.delete(hard=True)),
    }
    alice_after_public = alice.model(model_id).data
    return {
        "id": model_id,
        "private": private,
        "alice_after_private": alice_after_private,
        "make_public_status": make_public,
        "public": public,
        "alice_after_public": alice_after_public,
    }


def wait_for_export_like_the_sdk_suite(model_id: str, fmt: str, key: str, timeout: float) -> dict:
    """Poll `POST /get-export` as hub-sdk's own test suite does, until "Export ready!".

    Its `is_model_exported` posts `{"modelId", "format"}` as JSON text with the x-api-key header
    and Content-Type set by hand, and looks only at `message` (docs/protocol/hub-v1.md §5.13).
    """
    import requests  # hub-sdk's own dependency

    host = os.environ["ULTRALYTICS_HUB_API"]
    headers = {"x-api-key": key, "Content-Type": "application/json"}
    payload = json.dumps({"modelId": model_id, "format": fmt})
    deadline, polls, data = time.monotonic() + timeout, 0, {}
    while time.monotonic() < deadline:
        data = requests.post(url=f"{host}/get-export", headers=headers, data=payload).json()
        polls += 1
        if data.get("message") == "Export ready!" or data.get("success") is False:
            break
        time.sleep(0.5)
    return {"polls": polls, "last": data}


def scenario_export_predict(p: dict[str, Any]) -> dict[str, Any]:
    hub = client(p["key"])
    model = hub.model(p["model_id"])
    exported = model.export("onnx")
    ready = wait_for_export_like_the_sdk_suite(p["model_id"], "onnx", p["key"], p["timeout"])
    predicted = model.predict(p["image"], {"size": 64, "confidence": 0.25, "iou": 0.45})
    return {
        "export": status(exported),
        "ready": ready,
        "predict": status(predicted),
        "prediction": predicted.json() if predicted is not None else None,
    }


SCENARIOS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "auth": scenario_auth,
    "model_crud": scenario_model_crud,
    "model_pagination": scenario_model_pagination,
    "metrics": scenario_metrics,
    "weights": scenario_weights,
    "heartbeat": scenario_heartbeat,
    "datasets": scenario_datasets,
    "dataset_upload_only": scenario_dataset_upload_only,
    "projects": scenario_projects,
    "user": scenario_user,
    "authz": scenario_authz,
    "export_predict": scenario_export_predict,
}


def main(argv: list[str]) -> int:
    """Run the scenario named by argv[1] with the JSON parameters in argv[2]."""
    if len(argv) != 3 or argv[1] not in SCENARIOS:
        sys.stderr.write(f"usage: {argv[0]} {{{','.join(SCENARIOS)}}} PARAMS_JSON\n")
        return 2
    result = SCENARIOS[argv[1]](json.loads(argv[2]))
    sys.stdout.flush()
    print(json.dumps(result, default=repr))  # noqa: T201 - the scenario's output protocol
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
