# mypy: disable-error-code="import-not-found"
# (ultralytics is installed in the compat venv only)
"""Scenarios driven by the real ultralytics 8.3.253 + hub-sdk 0.0.25 clients.

Run by the compatibility venv's python (which has torch and ultralytics but not trainhub), as
`python ultralytics_runs.py SCENARIO [options]`, with the HUB roots, `YOLO_CONFIG_DIR` and
`YOLO_OFFLINE=true` in the environment and a scratch directory as the current directory. Prints
exactly one line `RESULT {json}` that the test parses; everything else is the clients' own log.

The script is self-contained: it must not import trainhub. It blocks (and reports) every
connection to a host that is not on the loopback interface, so a scenario that passes proved that
the run stayed offline.
"""

import argparse
import hashlib
import ipaddress
import json
import os
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

RESULT_PREFIX = "RESULT "
BLOCKED: list[str] = []
SETTINGS_VERSION = "0.0.6"


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    if host in {"localhost", ""}:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def guard_network() -> None:
    """Refuse, and record, every TCP connection or name lookup that leaves this machine."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback(host):
            BLOCKED.append(str(host))
            raise OSError(f"compat test: outbound connection to {address!r} blocked")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host if isinstance(host, str) else host.decode()):
            BLOCKED.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"compat test: lookup of {host!r} blocked")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo


def prepare_settings() -> Path:
    """Point ultralytics' dataset/weights/runs dirs at the current directory, before its import.

    ultralytics reads `<YOLO_CONFIG_DIR>/Ultralytics/settings.json` once at import and would
    otherwise default these dirs to the git checkout that contains the venv. A saved `api_key` is
    kept. `sync=False` disables the analytics events.
    """
    cwd = Path.cwd().resolve()
    path = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    current: dict[str, Any] = {}
    if path.exists():
        current = json.loads(path.read_text() or "{}")
    settings = {
        "settings_version": SETTINGS_VERSION,
        "datasets_dir": str(cwd / "datasets"),
        "weights_dir": str(cwd / "weights"),
        "runs_dir": str(cwd / "runs"),
        "uuid": current.get("uuid") or hashlib.sha256(str(cwd).encode()).hexdigest(),
        "sync": False,
        "api_key": current.get("api_key", ""),
        "openai_api_key": "",
        "clearml": True,
        "comet": True,
        "dvc": True,
        "hub": True,
        "mlflow": True,
        "neptune": True,
        "raytune": True,
        "tensorboard": False,
        "wandb": False,
        "vscode_msg": False,
        "openvino_msg": False,
    }
    path.write_text(json.dumps(settings, indent=2))
    return path


def settings_api_key() -> str:
    path = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "settings.json"
    return str(json.loads(path.read_text()).get("api_key", ""))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def api_get(path: str, key: str) -> dict[str, Any]:
    """GET `API + path` with the API key and return the decoded `data` of the envelope."""
    request = urllib.request.Request(
        os.environ["ULTRALYTICS_HUB_API"] + path, headers={"x-api-key": key}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read()).get("data") or {}


def emit(result: dict[str, Any]) -> None:
    result["blocked"] = sorted(set(BLOCKED))
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)  # noqa: T201


def common_train_args(epochs: int) -> dict[str, Any]:
    return {
        "epochs": epochs,
        "imgsz": 64,
        "batch": 4,
        "amp": False,
        "device": "cpu",
        "workers": 0,
        "plots": False,
        "seed": 0,
    }


def add_metrics_pacing(model: Any) -> None:
    """Make every epoch's metrics reach the server, as they do in runs with epochs of 3 s or more.

    The stock client uploads the queued metrics only when more than 3 s passed since the last
    upload (docs/protocol/hub-v1.md §7.2); the toy epochs here take about a second. This callback
    runs before the HUB callback of the same event and waits out the remainder of that interval.
    """

    def pace(trainer: Any) -> None:
        session = getattr(trainer, "hub_session", None)
        if session and session.timers.get("metrics"):
            wait = session.timers["metrics"] + session.rate_limits["metrics"] + 0.2 - time.time()
            if wait > 0:
                time.sleep(wait)

    model.add_callback("on_fit_epoch_end", pace)


def scenario_login(args: argparse.Namespace) -> None:
    """`hub.login(key)` for each key in order; report the outcome and the saved key after each."""
    prepare_settings()
    from ultralytics import hub

    outcomes = []
    for key in args.keys:
        ok = hub.login(key)
        outcomes.append({"key": key, "ok": ok, "saved": settings_api_key()})
    emit({"outcomes": outcomes})


def scenario_train_local(args: argparse.Namespace) -> None:
    """Plain local training; with --login the HUB callbacks open a session (flow 13.3)."""
    prepare_settings()
    from ultralytics import YOLO, hub

    logged_in = hub.login(args.login) if args.login else False
    model = YOLO("yolo11n.yaml")
    stop_after = args.stop_after_epoch

    if stop_after is not None:

        def stop(trainer: Any) -> None:
            # on_train_epoch_start of the next epoch: last.pt of `stop_after` is on disk and the
            # HUB callbacks of that epoch have run. Leave like a killed process would.
            if trainer.epoch == stop_after + 1:
                emit(
                    {
                        "stopped_at_epoch": stop_after,
                        "last": str(trainer.last),
                        "last_sha256": sha256(trainer.last),
                        "save_dir": str(trainer.save_dir),
                    }
                )
                sys.stdout.flush()
                os._exit(0)

        model.add_callback("on_train_epoch_start", stop)

    started = time.monotonic()
    model.train(data=args.data, **common_train_args(args.epochs))
    trainer = model.trainer
    session = trainer.hub_session
    emit(
        {
            "logged_in": logged_in,
            "seconds": round(time.monotonic() - started, 1),
            "save_dir": str(trainer.save_dir),
            "best": str(trainer.best),
            "best_sha256": sha256(trainer.best),
            "last_exists": trainer.last.exists(),
            "hub_model_id": session.model.id if session else None,
            "epochs_done": trainer.epoch + 1,
        }
    )


def scenario_train_url(args: argparse.Namespace) -> None:
    """`YOLO(url).train()` on a HUB model (flows 13.4 and 13.5)."""
    prepare_settings()
    from ultralytics import YOLO, hub

    logged_in = hub.login(args.login) if args.login else None
    url = args.url + (f"?api_key={args.api_key}" if args.api_key else "")
    key = args.login or args.api_key
    model = YOLO(url)
    session = model.session
    model_file = str(session.model_file) if session else None
    ckpt = Path(model.ckpt_path).resolve() if model.ckpt_path else None
    ckpt_sha256 = sha256(ckpt) if ckpt else None  # the downloaded checkpoint, before training
    add_metrics_pacing(model)
    epochs_seen: list[int] = []
    model.add_callback("on_train_epoch_start", lambda t: epochs_seen.append(t.epoch))

    if args.checkpoint_every_epoch:

        def no_checkpoint_interval(trainer: Any) -> None:
            # The stock client uploads last.pt at most every 900 s (docs/protocol/hub-v1.md §7.3).
            if trainer.hub_session:
                trainer.hub_session.rate_limits["ckpt"] = 0

        model.add_callback("on_train_start", no_checkpoint_interval)

    stop_after = args.stop_after_epoch
    if stop_after is not None:

        def stop(trainer: Any) -> None:
            if trainer.epoch != stop_after + 1:
                return
            # The checkpoint and metrics uploads run in daemon threads: wait until the server
            # has them, then die like a killed process (no final upload, no further metrics).
            model_id = trainer.hub_session.model.id
            confirmed = False
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not confirmed:
                data = api_get(f"/v1/models/{model_id}", key)
                series = api_get(f"/v1/models/{model_id}/metrics", key)
                epochs: set[str] = set()
                items: list[dict[str, Any]] = series if isinstance(series, list) else []
                for item in items:
                    epochs |= set((item.get("data") or {}).keys())
                confirmed = bool(data.get("has_last_weights")) and str(stop_after) in epochs
                if not confirmed:
                    time.sleep(0.5)
            emit(
                {
                    "stopped_at_epoch": stop_after,
                    "server_confirmed": confirmed,
                    "last": str(trainer.last),
                    "last_sha256": sha256(trainer.last),
                    "save_dir": str(trainer.save_dir),
                    "data": str(trainer.args.data),
                    "epochs_seen": epochs_seen,
                    "model_file": model_file,
                }
            )
            sys.stdout.flush()
            os._exit(0)

        model.add_callback("on_train_epoch_start", stop)

    started = time.monotonic()
    model.train()
    trainer = model.trainer
    emit(
        {
            "logged_in": logged_in,
            "seconds": round(time.monotonic() - started, 1),
            "session_model_id": session.model.id if session else None,
            "model_file": model_file,
            "ckpt_path": str(ckpt) if ckpt else None,
            "ckpt_sha256": ckpt_sha256,
            "resume": bool(trainer.resume),
            "train_args": session.train_args if session else None,
            "data": str(trainer.args.data),
            "save_dir": str(trainer.save_dir),
            "best_sha256": sha256(trainer.best),
            "epochs_seen": epochs_seen,
            "epochs": trainer.epochs,
            "args": {
                k: getattr(trainer.args, k)
                for k in (
                    "epochs",
                    "imgsz",
                    "batch",
                    "device",
                    "workers",
                    "amp",
                    "plots",
                    "patience",
                )
            },
        }
    )


def scenario_predict(args: argparse.Namespace) -> None:
    """Load a trained HUB model by URL (flow 13.6) and predict on an image."""
    prepare_settings()
    from ultralytics import YOLO

    url = args.url + (f"?api_key={args.api_key}" if args.api_key else "")
    model = YOLO(url)
    ckpt_path = Path(model.ckpt_path).resolve()
    results = model.predict(args.image, imgsz=64, device="cpu", verbose=False)
    emit(
        {
            "ckpt_path": str(ckpt_path),
            "ckpt_sha256": sha256(ckpt_path),
            "has_session": model.session is not None,
            "task": model.task,
            "results": len(results),
            "boxes": [len(r.boxes) for r in results],
            "shape": list(results[0].orig_shape),
        }
    )


def scenario_export(args: argparse.Namespace) -> None:
    """`hub.export_model` then `hub.get_export` until ready or failed (flow 13.7)."""
    prepare_settings()
    from ultralytics import hub

    logged_in = hub.login(args.login)
    hub.export_model(args.model_id, args.format)  # asserts exactly 200
    deadline, polls, answer = time.monotonic() + args.timeout, 0, {}
    while time.monotonic() < deadline:
        answer = hub.get_export(args.model_id, args.format)  # asserts exactly 200
        polls += 1
        if answer.get("message") == "Export ready!" or answer.get("success") is False:
            break
        time.sleep(0.5)
    emit({"logged_in": logged_in, "polls": polls, "answer": answer})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="scenario", required=True)
    login = sub.add_parser("login")
    login.add_argument("keys", nargs="+")
    local = sub.add_parser("train-local")
    local.add_argument("--data", required=True)
    local.add_argument("--epochs", type=int, default=2)
    local.add_argument("--login")
    local.add_argument("--stop-after-epoch", type=int)
    by_url = sub.add_parser("train-url")
    by_url.add_argument("--url", required=True)
    by_url.add_argument("--api-key", help="passed as ?api_key= in the model URL (not saved)")
    by_url.add_argument("--login", help="hub.login(KEY) first (saved in settings)")
    by_url.add_argument("--checkpoint-every-epoch", action="store_true")
    by_url.add_argument("--stop-after-epoch", type=int)
    predict = sub.add_parser("predict")
    predict.add_argument("--url", required=True)
    predict.add_argument("--api-key")
    predict.add_argument("--image", required=True)
    export = sub.add_parser("export")
    export.add_argument("--model-id", required=True)
    export.add_argument("--format", required=True)
    export.add_argument("--login", required=True)
    export.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    guard_network()
    {
        "login": scenario_login,
        "train-local": scenario_train_local,
        "train-url": scenario_train_url,
        "predict": scenario_predict,
        "export": scenario_export,
    }[args.scenario](args)


if __name__ == "__main__":
    main()
