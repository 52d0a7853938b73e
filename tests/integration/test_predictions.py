"""Hosted inference through the API, without a worker process (docs/protocol/hub-v1.md §5.15).

Everything the server decides before a job is queued: who may predict, on which model, with which
options and which image. Bad input gets a clear 4xx whether or not a worker runs; a valid request
with no worker alive answers 503 with Retry-After at once. The real worker: tests/exports/.
"""

import struct
import zlib

import pytest

from tests.conftest import make_settings
from tests.factories import create_model, create_users, error, ok, upload_weights, weights_file
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.db import workers
from trainhub.server.state import hub_state


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, *, depth: int = 8, colour: int = 2) -> bytes:
    """A real PNG of one colour (rows of zeros), compressed row by row: a bomb stays small."""
    channels = {0: 1, 2: 3}[colour]
    row = b"\x00" + bytes((width * channels * depth + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def trained_model(client: TestClient, tmp_path, **doc) -> str:
    model_id = create_model(client, **doc)
    path, _ = weights_file(tmp_path / f"{model_id}.pt")
    ok(upload_weights(client, model_id, path, final=True))
    return model_id


def predict(client: TestClient, model_id: str, image: bytes, **fields: str):
    files = {"image": ("image", image)}
    return client.post(f"/v1/predict/{model_id}", files=files, data=fields)


def test_a_valid_request_without_a_worker_answers_503_at_once(alice, tmp_path) -> None:
    model_id = trained_model(alice, tmp_path)
    answer = predict(alice, model_id, png(64, 48), confidence="0.25", iou="0.45", size="640")
    message = error(answer, 503)
    assert "no worker is running" in message and "trainhub worker" in message
    assert int(answer.headers["Retry-After"]) >= 1


def test_with_a_silent_worker_the_request_waits_its_time_and_answers_503(
    tmp_path, database_url
) -> None:
    settings = make_settings(tmp_path, database_url, predict_timeout_s=0.5)
    app = create_app(settings)
    users = create_users(hub_state(app).db)
    with hub_state(app).db.write() as session:  # a worker that registered, then stopped consuming
        workers.register(session, "W" * 20, "host:1", 1, {})
    with TestClient(app, headers={"x-api-key": users.alice.key}) as alice:
        model_id = trained_model(alice, tmp_path)
        answer = predict(alice, model_id, png(32, 32))
        assert "no worker answered within 0.5 s" in error(answer, 503)
        assert int(answer.headers["Retry-After"]) >= 1
    # the job stays queued, marked to expire: a worker that comes later skips it
    pending = hub_state(app).queue.huey.pending()
    assert len(pending) == 1 and pending[0].expires_resolved is not None
    hub_state(app).db.dispose()


BAD_IMAGES = [
    pytest.param(b"GIF8", 422, "not an image", id="truncated-magic"),
    pytest.param(b"hello, world" * 10, 422, "not an image", id="text"),
    pytest.param(b"%PDF-1.7\n" + b"0" * 100, 422, "not an image", id="pdf"),
    pytest.param(png(0, 0), 422, "no pixels", id="0x0"),
    pytest.param(png(0, 10), 422, "no pixels", id="0x10"),
    pytest.param(
        png(10000, 10000, depth=1, colour=0), 413, "100.0 megapixels", id="100-megapixels"
    ),
    # 15000x15000 bits of zeros: a 30 KB file that decodes to 675 MB of RGB
    pytest.param(png(15000, 15000, depth=1, colour=0), 413, "megapixels", id="bomb"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, 422, "IHDR", id="png-without-header"),
    pytest.param(b"\xff\xd8\xff\xe0" + b"\x00" * 2, 422, "JPEG", id="jpeg-without-frame"),
    pytest.param(b"", 422, "empty", id="empty"),
]


@pytest.mark.parametrize(("image", "status", "said"), BAD_IMAGES)
def test_bad_images_are_refused_before_any_worker(alice, tmp_path, image, status, said) -> None:
    model_id = trained_model(alice, tmp_path)
    assert said in error(predict(alice, model_id, image), status)


def test_a_bomb_png_is_small_on_the_wire(tmp_path) -> None:
    assert len(png(15000, 15000, depth=1, colour=0)) < 100_000


BAD_FIELDS = [
    ({"confidence": "2"}, "confidence must be above 0"),
    ({"conf": "0"}, "confidence must be above 0"),
    ({"confidence": "nan"}, "finite"),
    ({"iou": "-1"}, "iou must be above 0"),
    ({"size": "10"}, "size must be 32 to 2048"),
    ({"imgsz": "99999"}, "size must be 32 to 2048"),
    ({"size": "big"}, "size must be a number"),
    ({"runtime": "tensorrt"}, "runtime must be one of"),
]


@pytest.mark.parametrize(("fields", "said"), BAD_FIELDS)
def test_bad_options_are_refused(alice, tmp_path, fields, said) -> None:
    model_id = trained_model(alice, tmp_path)
    assert said in error(predict(alice, model_id, png(8, 8), **fields), 422)


def test_the_image_part_is_required_and_alone(alice, tmp_path) -> None:
    model_id = trained_model(alice, tmp_path)
    other = alice.post(f"/v1/predict/{model_id}", data={"size": "64"}, files={"x": ("x", b"1")})
    assert "unexpected file part 'x'" in error(other, 400)
    two = [("image", ("a", png(8, 8))), ("image", ("b", png(8, 8)))]
    assert "exactly one" in error(alice.post(f"/v1/predict/{model_id}", files=two), 422)
    error(alice.post(f"/v1/predict/{model_id}", data={"size": "64"}), 415)


def test_an_image_over_max_image_bytes_is_refused(tmp_path, database_url) -> None:
    app = create_app(make_settings(tmp_path, database_url, max_image_bytes=1000))
    users = create_users(hub_state(app).db)
    with TestClient(app, headers={"x-api-key": users.alice.key}) as alice:
        model_id = trained_model(alice, tmp_path)
        answer = predict(alice, model_id, png(8, 8) + b"\x00" * 2000)
        assert answer.status_code in (413, 422), answer.text
        assert answer.json()["success"] is False
    hub_state(app).db.dispose()


def test_who_may_predict(alice, bob, anon, tmp_path) -> None:
    private = trained_model(alice, tmp_path)
    public = trained_model(alice, tmp_path, public=True)
    error(predict(bob, private, png(8, 8)), 404)
    error(predict(anon, private, png(8, 8)), 401)
    error(predict(anon, public, png(8, 8)), 401)
    # bob may predict with alice's public model: he reaches the worker check
    assert "no worker" in error(predict(bob, public, png(8, 8)), 503)
    error(predict(alice, "A" * 20, png(8, 8)), 404)


def test_a_model_without_weights_cannot_predict(alice) -> None:
    model_id = create_model(alice)
    assert "no final weights" in error(predict(alice, model_id, png(8, 8)), 409)
