"""`trainhub demo`: a hub, a small real PyTorch run on made-up data, a crash and a resume.

The hub is a `trainhub server` subprocess on 127.0.0.1 with a data folder of its own; the run is
HUBTrainingSession's plain loop around a tiny classifier. Halfway through, the run stops without
its final upload, as after a crash; what it left in the outbox is sent as `trainhub sync` would,
and a new session loads the same model URL, resumes from the hub's last checkpoint and finishes.
torch and the server stack are only imported inside the command (`pip install 'trainhub[demo]'`).
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import typer

from trainhub.cli.hub import fail, hub_errors, quiet_http_logs
from trainhub.cli.startup import check_data_dir
from trainhub.cli.sync import sync_model
from trainhub.client.api import HubClient
from trainhub.client.outbox import Outbox
from trainhub.client.session import HUBTrainingSession

if TYPE_CHECKING:
    import torch

TRAINHUB = [sys.executable, "-m", "trainhub.cli"]
NEEDED_MODULES = ("torch", "fastapi", "uvicorn", "sqlalchemy")
INSTALL_HINT = "pip install 'trainhub[demo]'"
DEMO_USER = "demo"
START_TIMEOUT_S = 60.0
SYNC_TIMEOUT_S = 120.0
BATCH = 64
ACCURACY = "metrics/accuracy"


# --- the embedded hub ----------------------------------------------------------------------


@dataclass
class EmbeddedHub:
    """A `trainhub server` subprocess and the key of the demo user."""

    url: str
    port: int
    data_dir: Path
    key: str
    proc: "subprocess.Popen[bytes]"
    log_path: Path

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not ended after 15 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def server_env() -> dict[str, str]:
    """Return the hub processes' environment: none of the caller's TRAINHUB_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
    env["TRAINHUB_CREATE_ADMIN"] = "false"
    return env


def run_admin(*args: str, data_dir: Path) -> "subprocess.CompletedProcess[str]":
    """Run an operator command (`trainhub users ...`) on the demo's data folder."""
    return subprocess.run(
        [*TRAINHUB, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=server_env(),
        check=False,
    )


def create_key(data_dir: Path) -> str:
    """Create the demo user (in a reused folder: a new key for it); return the key."""
    made = run_admin("users", "create", DEMO_USER, "--init", data_dir=data_dir)
    if made.returncode != 0:
        made = run_admin("keys", "create", "--user", DEMO_USER, data_dir=data_dir)
    if made.returncode != 0:
        fail(f"could not create the demo user in {data_dir}:\n{made.stdout}{made.stderr}")
    return made.stdout.strip().splitlines()[-1].strip()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_hub(data_dir: Path, port: int) -> EmbeddedHub:
    """Start `trainhub server` on `port` and wait until it answers; exit 1 if it does not."""
    key = create_key(data_dir)
    url = f"http://127.0.0.1:{port}"
    log_path = data_dir / "server.log"
    command = ["server", "--host", "127.0.0.1", "--port", str(port), "--public-url", url]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*TRAINHUB, *command, "--data-dir", str(data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(),
        )
    hub = EmbeddedHub(url, port, data_dir, key, proc, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return hub
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    hub.stop()
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
    fail(f"the hub did not start; the end of {log_path}:\n{tail}")


# --- the model and its training (all torch code is here) ------------------------------------


def make_blobs(count: int, generator: "torch.Generator") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Return `count` 2-D points from three overlapping blobs, and their blob (0-2)."""
    import torch

    centers = torch.tensor([[0.0, 1.6], [-1.4, -0.8], [1.4, -0.8]])
    labels = torch.randint(0, 3, (count,), generator=generator)
    return centers[labels] + torch.randn(count, 2, generator=generator), labels


def save_atomically(state: object, path: Path) -> None:
    """torch.save to a temporary file, then rename it: an upload never sees half a file."""
    import torch

    partial = path.with_name(f".{path.name}.partial")
    torch.save(state, partial)
    os.replace(partial, path)


class Trainer:
    """A small MLP learning to tell the blobs apart, with plain state_dict checkpoints."""

    def __init__(self, seed: int = 0) -> None:
        import torch
        from torch import nn

        self.generator = torch.Generator().manual_seed(seed)
        self.train_x, self.train_y = make_blobs(2048, self.generator)
        self.val_x, self.val_y = make_blobs(512, self.generator)
        torch.manual_seed(seed)
        self.model = nn.Sequential(
            nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3)
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.002, momentum=0.9)
        self.best_accuracy = 0.0

    def run_epoch(self) -> dict[str, float]:
        """Train one pass over the data; return the epoch's losses and validation accuracy."""
        import torch
        from torch.nn import functional

        self.model.train()
        order = torch.randperm(len(self.train_x), generator=self.generator)
        losses = []
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            loss = functional.cross_entropy(self.model(self.train_x[batch]), self.train_y[batch])
            self.optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            self.optimizer.step()
            losses.append(loss.item())
        self.model.eval()
        with torch.no_grad():
            logits = self.model(self.val_x)
            val_loss = functional.cross_entropy(logits, self.val_y).item()
            accuracy = (logits.argmax(1) == self.val_y).float().mean().item()
        return {"train/loss": sum(losses) / len(losses), "val/loss": val_loss, ACCURACY: accuracy}

    def save(self, run_dir: Path, epoch: int, accuracy: float) -> bool:
        """Write last.pt, and best.pt when `accuracy` is the best yet; return whether it is."""
        is_best = accuracy > self.best_accuracy
        if is_best:
            self.best_accuracy = accuracy
            save_atomically(self.model.state_dict(), run_dir / "best.pt")
        checkpoint = {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_accuracy": self.best_accuracy,
        }
        save_atomically(checkpoint, run_dir / "last.pt")
        return is_best

    def restore(self, path: Path) -> int:
        """Load a checkpoint (tensors and numbers only: weights_only=True); return next epoch."""
        import torch

        checkpoint = torch.load(path, weights_only=True)
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.best_accuracy = float(checkpoint["best_accuracy"])
        return int(checkpoint["epoch"]) + 1


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoRun:
    """Where the run's model lives and where its files go."""

    hub: EmbeddedHub
    outbox: Outbox
    run_dir: Path
    epochs: int
    model_id: str

    @property
    def model_url(self) -> str:
        """Return the model's dashboard URL, which is also what a session loads."""
        return f"{self.hub.url}/models/{self.model_id}"

    def open_session(self) -> HUBTrainingSession:
        """Load the model by its URL, as a training script does."""
        session = HUBTrainingSession(
            self.model_url,
            api_key=self.hub.key,
            outbox=self.outbox,
            weights_dir=self.run_dir / "weights",
        )
        session.rate_limits.update(metrics=1.0, ckpt=0.0)  # a demo streams every checkpoint
        return session

    def client(self) -> HubClient:
        """Return a HubClient as the demo user."""
        return HubClient(self.hub.url, self.hub.key)


def create_run(hub: EmbeddedHub, epochs: int) -> DemoRun:
    """Create the demo model on the hub."""
    document = {
        "meta": {"name": "demo-blobs"},
        "config": {"epochs": epochs, "batchSize": BATCH},
        "lineage": {"architecture": {"name": "mlp-2x32"}},
        "dataset": {"name": "synthetic-blobs"},
    }
    with HubClient(hub.url, hub.key) as client:
        model_id = client.create_model(document)
    run_dir = hub.data_dir / "run"
    run_dir.mkdir(exist_ok=True)
    return DemoRun(hub, Outbox(hub.data_dir / "outbox.sqlite3"), run_dir, epochs, model_id)


def train(session: HUBTrainingSession, trainer: Trainer, run: DemoRun, epochs: range) -> None:
    """The plain training loop: metrics and a checkpoint to the session after every epoch."""
    for epoch in epochs:
        values = trainer.run_epoch()
        session.metrics_queue[epoch] = json.dumps(values)
        session.upload_metrics()
        is_best = trainer.save(run.run_dir, epoch, values[ACCURACY])
        session.upload_model(epoch, run.run_dir / "last.pt", is_best=is_best)
        typer.echo(
            f"  epoch {epoch + 1}/{run.epochs}: loss {values['train/loss']:.3f}, "
            f"accuracy {values[ACCURACY]:.3f}{' (best)' if is_best else ''}"
        )


def crash_halfway(run: DemoRun) -> None:
    """Train the first half, then stop without the final upload and without waiting."""
    half = run.epochs // 2
    typer.echo(f"-- training {run.model_url} (epochs 1-{half} of {run.epochs})")
    session = run.open_session()
    train(session, Trainer(), run, range(half))
    abandon(session)
    left = run.outbox.pending(run.hub.url, run.model_id)
    typer.echo(f"-- simulated crash after epoch {half}: the run stops without its final upload")
    typer.echo(f"   left in the outbox: {left.describe()}")


def abandon(session: HUBTrainingSession) -> None:
    """Stop a session as a crash would: no final upload, no waiting for what is queued.

    The upload thread ends after the request it is sending; the rest stays in the outbox. (A
    session merely dropped would keep its thread running in this process, racing the resumed
    one.) The last heartbeat says "failed", as a trainer that catches its crash reports it.
    """
    session.finish("failed", timeout_s=0)


def resume(run: DemoRun) -> None:
    """Send what the crash left, load the model again, resume from its checkpoint, finish."""
    with run.client() as client:
        report = sync_model(run.outbox, client, run.model_id, SYNC_TIMEOUT_S)
    typer.echo(f"-- sending what was left (as `trainhub sync` does): {report.describe()}")
    if not report.left.is_empty():
        fail("the hub did not take what the interrupted run left; see the log above")
    session = run.open_session()
    if not (session.model_file or "").endswith(".pt"):
        fail(f"the hub has no checkpoint of {run.model_url} to resume from")
    trainer = Trainer()
    start = trainer.restore(Path(str(session.model_file)))
    typer.echo(f"-- resumed from the hub's checkpoint of epoch {start}: {session.train_args}")
    train(session, trainer, run, range(start, run.epochs))
    best = run.run_dir / "best.pt"
    session.upload_model(run.epochs - 1, best, map=trainer.best_accuracy, final=True)


def check_result(run: DemoRun) -> None:
    """Print what the hub now holds; exit 1 unless the model is trained with every epoch."""
    with hub_errors(), run.client() as client:
        record = client.get_model(run.model_id)
        epochs = {e for series in client.get_metrics(run.model_id) for e in series.data}
    left = run.outbox.pending(run.hub.url, run.model_id)
    typer.echo(f"-- the hub has: status {record.status}, metrics for {len(epochs)} epochs")
    if record.status != "trained" or len(epochs) != run.epochs or not left.is_empty():
        fail(f"the run did not finish on the hub; still in the outbox: {left.describe()}")


def show_summary(run: DemoRun) -> None:
    """Leave what a person needs on screen."""
    typer.echo("")
    typer.echo(f"Dashboard: {run.model_url}")
    typer.echo(f"API key:   {run.hub.key}  (user {DEMO_USER}; sign in to the dashboard with it)")
    typer.echo(f"Data dir:  {run.hub.data_dir}  (hub log: {run.hub.log_path.name})")


def prepare_folder(data_dir: Path | None) -> Path:
    """Return the demo's data folder: the given one, or a new temporary folder."""
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="trainhub-demo-"))
    check_data_dir(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir.resolve()


def run_demo(hub: EmbeddedHub, epochs: int) -> DemoRun:
    """Create the model, train half, crash, resume, finish, check."""
    with hub_errors():
        run = create_run(hub, epochs)
        try:
            crash_halfway(run)
            resume(run)
            check_result(run)
        finally:
            run.outbox.close()
    return run


def wait_for_ctrl_c(hub: EmbeddedHub) -> None:
    """Keep the hub running until the user presses Ctrl-C (or it ends by itself)."""
    typer.echo("The hub keeps running; press Ctrl-C to stop it.")
    try:
        hub.proc.wait()
    except KeyboardInterrupt:
        typer.echo("")


def demo(
    epochs: int = typer.Option(6, "--epochs", min=2, help="Epochs to train (at least 2)."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Hub port (0: a free one)."),
    keep: bool = typer.Option(False, "--keep", help="Keep the hub running until Ctrl-C."),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Folder for the hub's data and the run's files (default: a new temporary one).",
        show_default=False,
    ),
) -> None:
    """Start a hub, train a small PyTorch model against it, crash halfway, resume, finish."""
    missing = [name for name in NEEDED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"the demo needs {', '.join(missing)}; install them with: {INSTALL_HINT}")
    quiet_http_logs()
    # torch warns at import when numpy is missing; the demo never converts to numpy
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    hub = start_hub(prepare_folder(data_dir), port or free_port())
    typer.echo(f"-- hub running at {hub.url} (data in {hub.data_dir})")
    try:
        show_summary(run_demo(hub, epochs))
        if keep:
            wait_for_ctrl_c(hub)
    finally:
        hub.stop()
    typer.echo(
        f"The hub stopped; run it again with: "
        f"trainhub server --data-dir {hub.data_dir} --port {hub.port}"
    )
