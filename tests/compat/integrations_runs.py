# mypy: disable-error-code="import-not-found"
# (torch, ultralytics, lightning and transformers are installed in the framework venvs only)
"""Training runs that use trainhub's integrations with the real frameworks.

Run by a framework venv's python (scripts/venvs.sh: `.venv-compat` has ultralytics 8.3,
lightning and transformers; `.venv-ml84` has ultralytics 8.4), each with trainhub installed, as
`python integrations_runs.py SCENARIO [options]`, with TRAINHUB_URL, TRAINHUB_API_KEY and
TRAINHUB_OUTBOX in the environment and a scratch directory as the current directory. Prints one
line `RESULT {json}` for the test; everything else is the frameworks' own log, plus every log
record of trainhub as `LOG <LEVEL> <logger>: <message>`. Connections that leave the machine are
refused and reported (the guard of ultralytics_runs.py).
"""

import argparse
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ultralytics_runs import BLOCKED, guard_network

RESULT_PREFIX = "RESULT "
DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def emit(result: dict[str, Any]) -> None:
    """Print the RESULT line, with the threads still alive and the connections refused."""
    time.sleep(0.2)  # let a thread that was told to stop get there
    result["threads"] = sorted(
        t.name for t in threading.enumerate() if t.name.startswith("trainhub")
    )
    result["blocked"] = sorted(set(BLOCKED))
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)  # noqa: T201


def session_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"flush_timeout_s": args.flush_timeout} if args.flush_timeout is not None else {}


def kill_server(args: argparse.Namespace) -> None:
    """Kill the hub (the test restarts it later): the hub dies in the middle of a run."""
    if args.kill_server_pid:
        os.kill(args.kill_server_pid, signal.SIGKILL)
        print(f"killed the hub (pid {args.kill_server_pid})", flush=True)  # noqa: T201


# --- ultralytics (8.3 with its stock HUB callbacks active, or 8.4) ------------------------------


def save_settings(values: dict[str, Any]) -> None:
    """Write ultralytics settings before ultralytics is imported here.

    It reads its directories once, at import, and by default puts runs next to the git checkout
    that holds the venv; a child process writes the file in whatever format this version uses.
    """
    code = (
        "import json, sys\n"
        "from ultralytics.utils import SETTINGS\n"
        "SETTINGS.update(json.loads(sys.argv[1]))"
    )
    subprocess.run([sys.executable, "-c", code, json.dumps(values)], check=True)


def scenario_yolo(args: argparse.Namespace) -> None:
    """Train yolo11n on the drawn dataset locally with add_trainhub_callbacks."""
    cwd = Path.cwd()
    settings: dict[str, Any] = {
        "datasets_dir": str(cwd / "datasets"),
        "weights_dir": str(cwd / "weights"),
        "runs_dir": str(cwd / "runs"),
        "sync": False,
    }
    if args.stock_hub_key:  # 8.3: make the stock HUB callbacks live, pointed at the same hub
        settings.update({"hub": True, "api_key": args.stock_hub_key})
    save_settings(settings)
    import ultralytics
    from ultralytics import YOLO

    from trainhub.integrations.ultralytics import add_trainhub_callbacks

    overrides = {
        "model": "yolo11n.yaml",
        "data": args.data,
        "epochs": args.epochs,
        "imgsz": 64,
        "batch": 4,
        "amp": False,
        "device": "cpu",
        "workers": 0,
        "plots": False,
        "seed": 0,
    }
    stock: list[str] = []

    def note_stock(trainer: Any) -> None:
        stock.extend(
            f"{event}:{cb.__module__}"
            for event, cbs in trainer.callbacks.items()
            for cb in cbs
            if cb.__module__.endswith("callbacks.hub")
        )

    if args.attach == "trainer":  # a trainer built by hand: attached after its __init__
        from ultralytics.models.yolo.detect import DetectionTrainer

        trainer = DetectionTrainer(overrides=overrides)
        target: Any = trainer
    else:
        model = YOLO("yolo11n.yaml")
        target = model
    callbacks = add_trainhub_callbacks(target, args.hub_model, **session_options(args))
    target.add_callback("on_train_start", note_stock)
    if args.kill_server_pid:
        target.add_callback("on_train_start", lambda trainer: kill_server(args))
    if args.attach == "trainer":
        trainer.train()
    else:
        model.train(**{k: v for k, v in overrides.items() if k != "model"})
        trainer = model.trainer
    emit(
        {
            "ultralytics": ultralytics.__version__,
            "model_url": callbacks.model_url,
            "best_sha256": sha256(trainer.best),
            "save_dir": str(trainer.save_dir),
            "epochs": args.epochs,
            "stock_hub_callbacks_left": stock,
            "hub_session_of_trainer": repr(getattr(trainer, "hub_session", None)),
        }
    )


# --- lightning ------------------------------------------------------------------------------


def scenario_lightning(args: argparse.Namespace) -> None:
    """Fit a tiny regression LightningModule on random tensors with TrainhubLogger."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    from trainhub.integrations.lightning import TrainhubLogger

    torch.manual_seed(0)

    class TinyRegressor(L.LightningModule):
        def __init__(self, batch_size: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    x = torch.randn(64, 4)
    y = x.sum(dim=1, keepdim=True)
    train = DataLoader(TensorDataset(x[:48], y[:48]), batch_size=8)
    val = DataLoader(TensorDataset(x[48:], y[48:]), batch_size=8)
    hub = TrainhubLogger(args.hub_model, **session_options(args))
    checkpoints = ModelCheckpoint(dirpath=Path.cwd() / "checkpoints", monitor="val_loss")

    class KillHub(L.Callback):
        def on_train_start(self, trainer: Any, module: Any) -> None:
            kill_server(args)

    trainer = L.Trainer(
        max_epochs=args.epochs,
        logger=hub,
        callbacks=[checkpoints, KillHub()],
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(TinyRegressor(), train, val)
    emit(
        {
            "model_url": hub.model_url,
            "best_sha256": sha256(checkpoints.best_model_path),
            "best_score": float(checkpoints.best_model_score),
            "epochs": args.epochs,
        }
    )


# --- transformers ---------------------------------------------------------------------------


def scenario_transformers(args: argparse.Namespace) -> None:
    """Train a tiny BERT classifier built from a config, on random token ids."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from trainhub.integrations.transformers import TrainhubCallback

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)

    class RandomTokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self, count: int) -> None:
            self.ids = torch.randint(0, 50, (count, 8))
            self.labels = (self.ids[:, 0] > 25).long()

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"input_ids": self.ids[i], "labels": self.labels[i]}

    hub = TrainhubCallback(args.hub_model, **session_options(args))
    training = TrainingArguments(
        output_dir=str(Path.cwd() / "out"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=RandomTokens(32),
        eval_dataset=RandomTokens(16),
        callbacks=[hub],
    )
    trainer.train()
    best = trainer.state.best_model_checkpoint
    emit(
        {
            "model_url": hub.model_url,
            "best_sha256": sha256(Path(best) / "model.safetensors") if best else None,
            "best_metric": trainer.state.best_metric,
            "epochs": args.epochs,
        }
    )


# --- a plain PyTorch loop: the example of docs/integrations.md, as written -------------------


def plain_loop_example() -> str:
    """Return the python block that follows the heading 'Plain PyTorch loop' in the docs."""
    text = DOCS.read_text()
    section = text[text.index("## Plain PyTorch loop") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    if match is None:
        raise SystemExit(f"{DOCS} has no python block under 'Plain PyTorch loop'")
    return match.group(1)


def scenario_loop(args: argparse.Namespace) -> None:
    """Run the documented plain-loop example unchanged; report its session and best.pt."""
    namespace: dict[str, Any] = {"__name__": "plain_loop_example"}
    exec(compile(plain_loop_example(), str(DOCS), "exec"), namespace)
    session = namespace["session"]
    emit(
        {
            "model_url": session.model_url if session else None,
            "best_sha256": sha256("best.pt"),
            "epochs": namespace["epochs"],
        }
    )


def main() -> None:
    logging.basicConfig(stream=sys.stdout, format="LOG %(levelname)s %(name)s: %(message)s")
    logging.getLogger("trainhub").setLevel(logging.INFO)
    guard_network()
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="scenario", required=True)
    for name in ("yolo", "lightning", "transformers", "loop"):
        one = sub.add_parser(name)
        one.add_argument("--epochs", type=int, default=2)
        one.add_argument("--hub-model", help="report to this hub model (else create one)")
        one.add_argument("--flush-timeout", type=float)
        one.add_argument("--kill-server-pid", type=int, help="kill the hub when training starts")
        if name == "yolo":
            one.add_argument("--data", required=True)
            one.add_argument("--stock-hub-key", help="8.3: turn the stock HUB callbacks on")
            one.add_argument("--attach", choices=("model", "trainer"), default="model")
    args = parser.parse_args()
    globals()[f"scenario_{args.scenario}"](args)


if __name__ == "__main__":
    main()
