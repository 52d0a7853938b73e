"""A first end-to-end pass through the API in-process (train, upload, read back, download)."""

from pathlib import Path

from tests.factories import create_model, epoch_metrics, ok, upload_weights, weights_file


def test_model_lifecycle_from_create_to_trained_download(alice, anon, tmp_path: Path) -> None:
    model_id = create_model(alice)
    ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": epoch_metrics(0)}))
    path, sha256 = weights_file(tmp_path / "best.pt")
    ok(upload_weights(alice, model_id, path, final=True, epoch=2))
    record = ok(alice.get(f"/v1/models/{model_id}"))
    assert record["status"] == "trained"
    assert f"{model_id}/best.pt" in record["weights"]
    download = anon.get(record["weights"].removeprefix("http://testserver"))
    assert download.status_code == 200
    assert download.headers["etag"] == f'"{sha256}"'
