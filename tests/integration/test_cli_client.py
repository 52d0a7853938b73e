"""The client commands (login, whoami, models, datasets, sync) against a real server process.

One server serves the module (starting one takes seconds); each test has its own credentials
file and outbox under tmp_path and its own objects on the hub. The sync-after-an-outage test
stops and restarts a server of its own.
"""

import hashlib
import io
import json
import os
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.factories import dataset_zip, weights_file
from tests.servers import TRAINHUB, RunningServer, free_port, spawn_server, start_server
from trainhub.cli import app as cli_app
from trainhub.client.api import HubClient
from trainhub.client.outbox import Outbox

runner = CliRunner()
WRONG_KEY = "ul" + "0" * 40


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("hub")) as server:
        yield server


@pytest.fixture(autouse=True)
def own_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the credentials file and the outbox into tmp_path."""
    monkeypatch.setenv("TRAINHUB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TRAINHUB_OUTBOX", str(tmp_path / "outbox" / "outbox.sqlite3"))


@pytest.fixture
def alice(hub: RunningServer) -> Iterator[HubClient]:
    """Log in as alice with the CLI; yield a HubClient to check what the commands did."""
    invoke("login", hub.keys["alice"], "--server", hub.url)
    with HubClient(hub.url, hub.keys["alice"]) as client:
        yield client


def invoke(*args: str, code: int = 0) -> Result:
    result = runner.invoke(cli_app, list(args))
    assert result.exit_code == code, f"{result.output}\n{result.exception!r}"
    return result


def run(*args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real `trainhub ARGS` in a subprocess, with this test's credentials and outbox."""
    proc = subprocess.run(
        [*TRAINHUB, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == code, f"{proc.stdout}\n{proc.stderr}"
    return proc


def last_line(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1].strip()


def credentials_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "credentials.json"


# --- login, whoami, logout -----------------------------------------------------------------


def test_login_checks_the_key_saves_it_and_whoami_names_the_user(
    hub: RunningServer, tmp_path: Path
) -> None:
    result = invoke("login", hub.keys["bob"], "--server", hub.url + "/")
    assert f"logged in to {hub.url} as bob" in result.output
    saved = json.loads(credentials_file(tmp_path).read_text())
    assert saved == {"url": hub.url, "api_key": hub.keys["bob"]}
    assert credentials_file(tmp_path).stat().st_mode & 0o777 == 0o600
    assert last_line(invoke("whoami")) == f"bob on {hub.url}"


def test_login_with_a_wrong_key_fails_and_saves_nothing(hub: RunningServer, tmp_path: Path) -> None:
    result = invoke("login", WRONG_KEY, "--server", hub.url, code=1)
    assert f"the hub at {hub.url} refused this key" in result.output
    assert "nothing was saved" in result.output
    assert not credentials_file(tmp_path).exists()


def test_login_to_an_unreachable_hub_fails_with_what_to_check(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = invoke("login", WRONG_KEY, "--server", url, code=1)
    assert f"check that the hub at {url} is running" in result.output
    assert not credentials_file(tmp_path).exists()


def test_whoami_without_credentials_says_how_to_log_in() -> None:
    result = invoke("whoami", code=1)
    assert "no hub URL found" in result.output
    assert "trainhub login KEY --server URL" in result.output


def test_logout_forgets_the_key_and_says_when_there_was_nothing(
    alice: HubClient, tmp_path: Path
) -> None:
    assert "logged out" in invoke("logout").output
    assert not credentials_file(tmp_path).exists()
    assert "nothing to forget" in invoke("logout").output
    invoke("whoami", code=1)


def test_the_variables_override_the_saved_key_and_login_says_so(
    hub: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINHUB_API_KEY", hub.keys["bob"])
    result = invoke("login", hub.keys["alice"], "--server", hub.url)
    assert "$TRAINHUB_API_KEY is set; it takes precedence" in result.output
    assert last_line(invoke("whoami")) == f"bob on {hub.url}"


# --- models --------------------------------------------------------------------------------


def test_models_create_prints_the_url_and_list_and_show_find_the_model(
    alice: HubClient,
) -> None:
    created = invoke("models", "create", "cli-made", "--epochs", "7", "--imgsz", "320")
    url = last_line(created)
    model_id = url.rsplit("/", 1)[-1]
    assert url == f"{alice.url}/models/{model_id}"
    listing = invoke("models", "list", "--limit", "100").output
    assert any(line.startswith(model_id) and "cli-made" in line for line in listing.splitlines())
    shown = invoke("models", "show", url).output
    assert "status:      new" in shown
    assert "epochs:      0/7 (metrics for 0)" in shown
    assert '"imgsz": 320' in shown
    record = json.loads(invoke("models", "show", model_id, "--json").stdout)
    assert record["id"] == model_id and record["train_args"]["epochs"] == 7
    assert alice.get_model(model_id).meta["name"] == "cli-made"


def test_models_show_of_a_missing_model_fails_with_a_hint(alice: HubClient) -> None:
    result = invoke("models", "show", "A" * 20, code=1)
    assert "not found" in result.output and "trainhub models list" in result.output
    assert "could not be parsed" in invoke("models", "show", "nonsense!", code=1).output


def test_models_download_saves_the_uploaded_weights_with_the_same_sha256(
    alice: HubClient, tmp_path: Path
) -> None:
    model_id = last_line(invoke("models", "create", "to-download")).rsplit("/", 1)[-1]
    result = invoke("models", "download", model_id, code=1)
    assert "has no best weights" in result.output and "train it first" in result.output
    path, sha256 = weights_file(tmp_path / "best.pt", size=300_000)
    alice.upload_weights(model_id, path, epoch=2, final=True, map=0.61)
    target = tmp_path / "downloads"
    target.mkdir()
    saved = invoke("models", "download", model_id, "--output", str(target))
    files = list(target.iterdir())
    assert len(files) == 1 and files[0].name.endswith("-best.pt")
    assert hashlib.sha256(files[0].read_bytes()).hexdigest() == sha256
    assert sha256 in saved.output


def test_models_download_into_a_new_folder_named_with_a_slash(
    alice: HubClient, tmp_path: Path
) -> None:
    model_id = alice.create_model({"meta": {"name": "to-folder"}})
    path, sha256 = weights_file(tmp_path / "best.pt", size=20_000)
    alice.upload_weights(model_id, path, epoch=0, final=True, map=0.5)
    run("models", "download", model_id, "--output", f"{tmp_path}/new/")
    [saved] = (tmp_path / "new").iterdir()
    assert saved.name.endswith("-best.pt") and saved.read_bytes() == path.read_bytes()
    run("models", "download", model_id, "--output", f"{tmp_path}/named.pt")
    assert hashlib.sha256((tmp_path / "named.pt").read_bytes()).hexdigest() == sha256


def test_models_download_of_weights_a_model_lacks_says_which_it_has(
    alice: HubClient, tmp_path: Path
) -> None:
    trained = alice.create_model({"meta": {"name": "trained-only"}})
    path, _ = weights_file(tmp_path / "best.pt", size=20_000)
    alice.upload_weights(trained, path, epoch=0, final=True, map=0.5)
    refused = run("models", "download", trained, "--kind", "last", code=1)
    assert f"model {trained} has no last weights (status trained)" in refused.stderr
    assert "it has its final weights: download them with --kind best" in refused.stderr
    assert "train it first" not in refused.stderr
    midway = alice.create_model({"meta": {"name": "checkpoint-only"}})
    alice.upload_weights(midway, path, epoch=0, final=False)
    refused = run("models", "download", midway, code=1)
    assert "it has a checkpoint of its latest epoch: download it with --kind last" in refused.stderr


def test_models_and_datasets_alone_list_them(alice: HubClient) -> None:
    model_id = alice.create_model({"meta": {"name": "listed-alone"}})
    models = run("models").stdout.splitlines()
    assert models[0].split() == ["ID", "STATUS", "EPOCHS", "NAME"]
    assert any(line.startswith(model_id) for line in models)
    datasets = run("datasets").stdout
    assert datasets.startswith(("ID", "no datasets yet")), datasets


def test_a_refused_key_names_the_command_that_makes_one(hub: RunningServer) -> None:
    refused = run("whoami", code=1, TRAINHUB_URL=hub.url, TRAINHUB_API_KEY=WRONG_KEY)
    assert "create one with `trainhub keys create --user NAME`" in refused.stderr


# --- datasets ------------------------------------------------------------------------------


def test_datasets_upload_creates_a_ready_dataset_that_list_shows(
    alice: HubClient, tmp_path: Path
) -> None:
    archive = tmp_path / "cli-shapes.zip"
    archive.write_bytes(dataset_zip("cli-shapes"))
    result = invoke("datasets", "upload", str(archive), "--name", "cli shapes")
    dataset_id = last_line(result)
    assert "dataset archive stored" in result.output
    listing = invoke("datasets", "list", "--limit", "100").output
    line = next(line for line in listing.splitlines() if line.startswith(dataset_id))
    assert "ready" in line and "cli-shapes.zip" in line and "cli shapes" in line
    assert str(archive.stat().st_size) in line


def test_datasets_upload_of_an_unusable_archive_shows_the_hubs_reason_and_leaves_nothing(
    alice: HubClient, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "no images here")
    path = tmp_path / "unusable.zip"
    path.write_bytes(buffer.getvalue())
    result = invoke("datasets", "upload", str(path), "--name", "unusable-archive", code=1)
    assert "error:" in result.output and "(HTTP 422)" in result.output
    assert "unusable-archive" not in invoke("datasets", "list", "--limit", "100").output
    not_archive = tmp_path / "table.csv"
    not_archive.write_text("a,b\n")
    assert "not a dataset archive" in invoke("datasets", "upload", str(not_archive), code=1).output
    empty = tmp_path / "empty.zip"
    empty.touch()
    answer = invoke("datasets", "upload", str(empty), code=1).output
    assert "empty (0 bytes)" in answer and "Traceback" not in answer


# --- sync ----------------------------------------------------------------------------------


def journal_run(outbox_path: Path, server: str, model_id: str, weights: Path) -> None:
    """Leave what a killed training process leaves: three epochs and the final weights."""
    outbox = Outbox(outbox_path)
    for epoch in range(3):
        outbox.put_metrics(server, model_id, epoch, {"train/loss": 1.0 / (epoch + 1)})
    outbox.put_upload(server, model_id, "final", weights, epoch=2, map_value=0.7)
    outbox.close()


def outbox_counts(outbox_path: Path, server: str, model_id: str) -> tuple[int, int]:
    outbox = Outbox(outbox_path)
    try:
        return outbox.counts(server, model_id)
    finally:
        outbox.close()


def assert_hub_has_the_run(client: HubClient, model_id: str, sha256: str, tmp_path: Path) -> None:
    record = client.get_model(model_id)
    assert record.status == "trained" and record.weights is not None
    [series] = client.get_metrics(model_id)
    assert series.meta["name"] == "train/loss" and sorted(series.data) == ["0", "1", "2"]
    assert client.download(record.weights, tmp_path / "synced.pt") == sha256


def test_sync_sends_what_a_run_left_and_empties_the_outbox(
    alice: HubClient, tmp_path: Path
) -> None:
    model_id = alice.create_model({"meta": {"name": "left-behind"}})
    weights, sha256 = weights_file(tmp_path / "best.pt")
    outbox_path = tmp_path / "outbox" / "outbox.sqlite3"
    journal_run(outbox_path, alice.url, model_id, weights)
    result = invoke("sync", "--timeout", "60")
    assert (
        f"model {model_id} on {alice.url}: sent 3 epochs of metrics and the final weights"
        in result.output
    )
    assert "nothing left" in result.output
    assert outbox_counts(outbox_path, alice.url, model_id) == (0, 0)
    assert_hub_has_the_run(alice, model_id, sha256, tmp_path)
    assert "nothing to send" in invoke("sync").output


def test_sync_against_a_stopped_hub_exits_1_keeps_everything_and_sends_it_later(
    tmp_path: Path,
) -> None:
    with start_server(tmp_path / "own") as server:
        invoke("login", server.keys["alice"], "--server", server.url)
        with HubClient(server.url, server.keys["alice"]) as client:
            model_id = client.create_model({"meta": {"name": "outage"}})
        weights, sha256 = weights_file(tmp_path / "best.pt")
        outbox_path = tmp_path / "outbox" / "outbox.sqlite3"
        journal_run(outbox_path, server.url, model_id, weights)
        server.kill(signal.SIGTERM)
        result = invoke("sync", "--timeout", "2", code=1)
        assert "sent nothing; left 3 epochs of metrics and the final weights" in result.output
        assert "run `trainhub sync` again" in result.output
        assert outbox_counts(outbox_path, server.url, model_id) == (3, 1)
        port = int(server.url.rsplit(":", 1)[1])
        restarted = spawn_server(server.data_dir, port)
        try:
            assert "nothing left" in invoke("sync", "--timeout", "60").output
            with HubClient(server.url, server.keys["alice"]) as client:
                assert_hub_has_the_run(client, model_id, sha256, tmp_path)
        finally:
            restarted.kill(signal.SIGTERM)
    assert outbox_counts(outbox_path, server.url, model_id) == (0, 0)
