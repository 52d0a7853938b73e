"""Fixtures for driving the real hub-sdk 0.0.25 client against a live trainhub server.

hub-sdk reads ULTRALYTICS_HUB_API / ULTRALYTICS_HUB_WEB once, at import time, and a server's URL
is only known once it is up, so hub-sdk never runs inside the pytest process: every scenario of
`hubsdk_scenarios.py` runs in a subprocess whose environment points at the server under test.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.ultralytics_support import ROOT, ShapesDataset, hub_client, make_shapes_dataset
from tests.servers import RunningServer, start_server

SCENARIOS = Path(__file__).with_name("hubsdk_scenarios.py")
SCENARIO_TIMEOUT_S = 240
LOG_TAIL_CHARS = 30_000


def tail(text: str, limit: int = LOG_TAIL_CHARS) -> str:
    """Return the end of `text`, marked when something was cut off."""
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} chars cut ...]\n{text[-limit:]}"


def dump(value: Any) -> str:
    """Render a value for an assertion message (JSON when possible)."""
    try:
        return json.dumps(value, indent=2, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


@dataclass
class ScenarioRun:
    """One finished hub-sdk scenario subprocess: what it printed and the JSON it reported."""

    name: str
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any]
    server: RunningServer

    def why(self, *extra: Any) -> str:
        """Everything needed to understand a failed assertion about this run."""
        parts = [f"scenario {self.name!r} (exit {self.returncode})"]
        parts += [f"--- context ---\n{dump(item)}" for item in extra]
        parts += [
            f"--- scenario result ---\n{dump(self.result)}",
            f"--- scenario stdout ---\n{tail(self.stdout)}",
            f"--- scenario stderr (hub-sdk log) ---\n{tail(self.stderr)}",
            f"--- server log ---\n{tail(self.server.log())}",
        ]
        return "\n".join(parts)


def hub_sdk_env(server: RunningServer) -> dict[str, str]:
    """The environment a hub-sdk process needs to talk to `server` (roots without trailing /)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ULTRALYTICS_", "HUB_", "TRAINHUB_"))
    }
    root = server.url.rstrip("/")
    env.update(
        {
            "ULTRALYTICS_HUB_API": root,
            "ULTRALYTICS_HUB_WEB": root,
            "LOGGER_LEVEL": "DEBUG",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def run_scenario(server: RunningServer, name: str, cwd: Path, /, **params: Any) -> ScenarioRun:
    """Run scenario `name` of hubsdk_scenarios.py against `server`; fail if it reports nothing."""
    cwd.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [sys.executable, str(SCENARIOS), name, json.dumps(params)],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=hub_sdk_env(server),
            timeout=SCENARIO_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        run = ScenarioRun(name, -1, out or "", err or "", {}, server)
        pytest.fail(f"hub-sdk hung for {SCENARIO_TIMEOUT_S} s (it sets no timeouts)\n{run.why()}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    run = ScenarioRun(name, proc.returncode, proc.stdout, proc.stderr, {}, server)
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if proc.returncode != 0 or not isinstance(result, dict):
        pytest.fail(f"scenario did not report a JSON result\n{run.why()}")
    run.result = result
    return run


Runner = Callable[..., ScenarioRun]


@pytest.fixture(scope="module")
def framework_venvs() -> None:
    """Build or verify the framework venvs (`scripts/venvs.sh`; a no-op once their stamps match)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "venvs.sh")],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"scripts/venvs.sh failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, framework_venvs: None
) -> Iterator[RunningServer]:
    """A module's own server for the framework tests: the framework venvs are checked first."""
    with start_server(tmp_path_factory.mktemp("hub")) as running:
        yield running


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> ShapesDataset:
    """A small detection dataset drawn for the module (8 train and 4 val images)."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"))


@pytest.fixture
def alice(server: RunningServer) -> Iterator[httpx.Client]:
    """alice's API client on the module's server."""
    with hub_client(server.url, server.keys["alice"]) as client:
        yield client


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A trainhub server with users alice (admin) and bob, shared by the tests of a module."""
    with start_server(tmp_path_factory.mktemp("compat-hub")) as server:
        yield server


@pytest.fixture
def scenario(hub: RunningServer, tmp_path: Path) -> Runner:
    """Run a hub-sdk scenario against `hub` with the test's tmp_path as working directory.

    Call as `scenario("name", key=..., ...)`; pass `server=` to target another server.
    """

    def run(name: str, /, *, server: RunningServer | None = None, **params: Any) -> ScenarioRun:
        return run_scenario(server or hub, name, tmp_path / f"run-{name}", **params)

    return run
