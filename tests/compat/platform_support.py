"""Helpers for driving the real ultralytics 8.4 `yolo` command against a trainhub server.

Every run is a subprocess of the 8.4 venv (`scripts/venvs.sh`), with nothing but the
documented setup: `ULTRALYTICS_PLATFORM_URL`, `ULTRALYTICS_API_KEY` (or a key saved by
`yolo login`) and `project=`. The environment is built from a short allow-list, so
`PYTEST_CURRENT_TEST` and the GitHub Actions variables, which switch the Platform callback off
(docs/protocol/platform.md §2), never reach the child. Runs are offline, on CPU, loopback only.
"""

import functools
import os
import shutil
import signal
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.compat.ultralytics_support import ROOT, data_of

ML84_VENV = Path(os.environ.get("ML84_VENV") or ROOT / ".venv-ml84")  # venvs.sh's
YOLO = ML84_VENV / "bin" / "yolo"
PYTHON = ML84_VENV / "bin" / "python"
RUN_TIMEOUT_S = 300.0
# the trainer's CLI arguments every run shares: a toy detector from its YAML (no download)
TOY = ("model=yolo11n.yaml", "imgsz=64", "batch=4", "device=cpu", "amp=False", "workers=0")
# what runs that check no plot add: matplotlib's plots take a third of a toy run's CPU (7.7 s of
# CPU with them, 5.0 s without, for 3 epochs); the run that checks the plots the hub stores keeps
# them
NO_PLOTS = ("plots=False",)
SILENCERS = ("PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "GITHUB_WORKFLOW", "RUNNER_OS")
T = TypeVar("T")


@functools.cache
def font_file() -> Path:
    """Return a real TrueType font of the venv's matplotlib: 8.4 cannot plot with empty fonts.

    matplotlib is in the torch base the venv is a layer on (scripts/venvs.sh), so the venv's own
    Python says where.
    """
    where = subprocess.run(
        [PYTHON, "-c", "import matplotlib; print(matplotlib.get_data_path())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    font = Path(where) / "fonts" / "ttf" / "DejaVuSans.ttf"
    assert font.is_file(), f"no matplotlib fonts for {PYTHON}: {font}"
    return font


@dataclass
class Finished:
    """A `yolo` subprocess that ended (or was killed)."""

    args: tuple[str, ...]
    returncode: int
    output: str

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-80:])
        return f"yolo {' '.join(self.args)} exited {self.returncode}; output tail:\n{tail}"


@dataclass
class Machine:
    """One user's machine: a private YOLO config dir, working dir and runs dir."""

    base: Path
    hub_url: str

    @classmethod
    def create(cls, base: Path, hub_url: str) -> "Machine":
        machine = cls(base, hub_url)
        fonts = machine.config_dir / "Ultralytics"
        fonts.mkdir(parents=True, exist_ok=True)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):  # else fetched from GitHub
            shutil.copyfile(font_file(), fonts / name)
        machine.cwd.mkdir(parents=True, exist_ok=True)
        (base / "mpl").mkdir(exist_ok=True)
        # the default folders are beside the git checkout ultralytics sits in: keep them here
        folders = {"runs_dir": "runs", "weights_dir": "weights", "datasets_dir": "datasets"}
        done = machine.run("settings", *(f"{k}={base / v}" for k, v in folders.items()))
        assert done.returncode == 0, done.describe()
        return machine

    @property
    def config_dir(self) -> Path:
        return self.base / "yolo-config"

    @property
    def cwd(self) -> Path:
        return self.base / "cwd"

    def save_dir(self, project: str, name: str) -> Path:
        """Return the run folder a detect run with this project and name writes."""
        return self.base / "runs" / "detect" / project / name

    def env(self, key: str | None) -> dict[str, str]:
        """The child's whole environment: the two Platform variables and an offline setup."""
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            {
                "HOME": str(self.base),
                "ULTRALYTICS_PLATFORM_URL": self.hub_url,
                "YOLO_OFFLINE": "true",
                "YOLO_AUTOINSTALL": "false",
                "YOLO_CONFIG_DIR": str(self.config_dir),
                "MPLCONFIGDIR": str(self.base / "mpl"),
                "CUDA_VISIBLE_DEVICES": "",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        if key is not None:
            env["ULTRALYTICS_API_KEY"] = key
        assert not set(SILENCERS) & set(env)
        return env

    def _log(self) -> Path:
        return self.base / f"yolo-{len(list(self.base.glob('yolo-*.log')))}.log"

    def start(self, *args: str, key: str | None = None) -> "Running":
        """Start `yolo ARGS` in the background; its output goes to a log file."""
        log = self._log()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(YOLO), *args],
                cwd=self.cwd,
                env=self.env(key),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return Running(args, proc, log)

    def run(self, *args: str, key: str | None = None, timeout: float = RUN_TIMEOUT_S) -> Finished:
        """Run `yolo ARGS` to the end (killed after `timeout`); never raises on failure."""
        return self.start(*args, key=key).wait(timeout)


@dataclass
class Running:
    """A `yolo` subprocess in progress."""

    args: tuple[str, ...]
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> Finished:
        """Wait for the end; a run past `timeout` is killed and reported as such."""
        try:
            returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return Finished(self.args, -9, self.output() + f"\n[killed after {timeout:.0f} s]")
        return Finished(self.args, returncode, self.output())

    def kill(self) -> Finished:
        """Kill the trainer as `kill -9` does: no callback, no goodbye."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        return Finished(self.args, self.proc.wait(timeout=30), self.output())

    def kill_between_saves(self, checkpoint: Path, timeout_s: float = 60) -> Finished:
        """Kill the trainer as `kill -9` does, at a moment when `checkpoint` is whole.

        ultralytics writes last.pt in place (torch.save), so a kill during a save leaves a file
        that no resume can load. A trainer killed then loses its checkpoint, whatever the hub
        does, and a test of the hub must not depend on where its kill lands. So the trainer is
        stopped (SIGSTOP) and its checkpoint checked: whole, it is killed; not, it goes on
        (SIGCONT) and is tried again a moment later.
        """
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            os.kill(self.proc.pid, signal.SIGSTOP)
            if _whole_zip(checkpoint):
                break
            os.kill(self.proc.pid, signal.SIGCONT)
            time.sleep(0.05)
        return self.kill()


def _whole_zip(path: Path) -> bool:
    """Tell whether `path` is a complete zip archive (torch.save's format), CRCs checked."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def wait_for(
    what: str, probe: Callable[[], T | None], timeout_s: float, why: Callable[[], str]
) -> T:
    """Poll `probe` until it returns something; fail naming `what` (and `why()`) after a while."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found is not None and found is not False:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{why()}")


def models_named(client: httpx.Client, prefix: str) -> list[dict[str, Any]]:
    """Return the caller's models whose name starts with `prefix`, newest first."""
    found = data_of(client.get("/v1/models", params={"limit": 100}))["results"]
    return [m for m in found if str(m["meta"]["name"]).startswith(prefix)]


def epochs_of(client: httpx.Client, model_id: str, metric: str = "train/box_loss") -> set[int]:
    """Return the epochs the hub holds for one metric of a model."""
    series = data_of(client.get(f"/v1/models/{model_id}/metrics"))
    return {int(e) for s in series if s["meta"]["name"] == metric for e in s["data"]}


def runs_of(client: httpx.Client, model_id: str) -> list[dict[str, Any]]:
    return list(data_of(client.get(f"/v1/models/{model_id}/runs")))
