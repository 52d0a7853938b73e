"""`trainhub demo` as a user runs it: a real PyTorch run through a crash to a trained model.

The demo stops its hub when it ends (without --keep), so the test passes --data-dir and then
starts a server of its own on that folder to inspect what the demo left on the hub.
"""

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.servers import TRAINHUB, free_port, spawn_server
from trainhub.cli import app as cli_app
from trainhub.client.api import HubClient
from trainhub.client.transfer import file_sha256

DEMO_TIMEOUT_S = 300


def printed(pattern: str, output: str) -> str:
    found = re.search(pattern, output, re.MULTILINE)
    assert found, f"{pattern!r} not in the demo's output:\n{output}"
    return found.group(1)


@pytest.mark.e2e
def test_the_demo_crashes_resumes_and_leaves_a_trained_model_with_every_epoch_once(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "demo"
    proc = subprocess.run(
        [*TRAINHUB, "demo", "--epochs", "4", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    model_url = printed(r"^Dashboard: (http://127\.0\.0\.1:\d+/models/\w{20})$", proc.stdout)
    key = printed(r"^API key:\s+(\S+)", proc.stdout)
    assert printed(r"^Data dir:\s+(\S+)", proc.stdout) == str(data_dir.resolve())
    assert "simulated crash after epoch 2" in proc.stdout
    assert "resumed from the hub's checkpoint of epoch 2" in proc.stdout
    model_id = model_url.rsplit("/", 1)[-1]
    server = spawn_server(data_dir, free_port())
    try:
        with HubClient(server.url, key) as client:
            record = client.get_model(model_id)
            series = client.get_metrics(model_id)
            assert record.weights is not None
            sha256 = client.download(record.weights, tmp_path / "final.pt")
    finally:
        server.kill(signal.SIGTERM)
    assert record.status == "trained" and record.has_best_weights
    assert {s.meta["name"] for s in series} == {"train/loss", "val/loss", "metrics/accuracy"}
    for one in series:
        assert sorted(one.data) == ["0", "1", "2", "3"], one
    assert sha256 == file_sha256(data_dir / "run" / "best.pt")


def test_the_demo_without_torch_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # find_spec then reports it missing
    result = CliRunner().invoke(cli_app, ["demo"])
    assert result.exit_code == 1
    assert "the demo needs torch" in result.output
    assert "pip install 'trainhub[demo]'" in result.output
