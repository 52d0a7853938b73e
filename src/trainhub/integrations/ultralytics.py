"""Report any ultralytics YOLO training run to a trainhub hub (ultralytics 8.3 and 8.4).

One line attaches the callbacks to a `YOLO` model (before `train()`) or to a trainer:

    add_trainhub_callbacks(model)                          # a new hub model, named after model=
    add_trainhub_callbacks(model, "http://hub:8000/models/<id>")   # report to an existing model

ultralytics 8.4 has no HUB support at all; in 8.3 the stock HUB callbacks are removed from the
trainer these callbacks are attached to, so nothing is sent twice (the rest of `settings.hub`,
such as `YOLO(<hub url>)`, is left alone). Every epoch's metrics are journaled in the session's
outbox, checkpoints are queued (the session rate-limits and coalesces them), and the end of
training flushes everything, final validation included, before the final weights. When the hub
cannot be used the callbacks do nothing and training goes on. Only the public client API is used.
"""

import logging
import weakref
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import PurePath
from typing import Any

from trainhub import HUBTrainingSession
from trainhub.integrations.metrics import numeric_metrics

logger = logging.getLogger(__name__)

STOCK_HUB_MODULE = "ultralytics.utils.callbacks.hub"  # 8.3 only; absent in 8.4
STOCK_HUB_EVENTS = (
    "on_pretrain_routine_start",
    "on_pretrain_routine_end",
    "on_fit_epoch_end",
    "on_model_save",
    "on_train_end",
)
FINAL_MAP_KEY = "metrics/mAP50-95(B)"

Callback = Callable[[Any], None]


class TrainhubCallbacks:
    """The callbacks one `add_trainhub_callbacks` call attached; `session` is the current run's."""

    def __init__(self, hub_model: str | None, session_options: Mapping[str, Any]) -> None:
        self.hub_model = hub_model
        self.session_options = dict(session_options)
        self.session: HUBTrainingSession | None = None
        self.model_url: str | None = None  # the hub model of the latest run
        self._trainer: weakref.ref[Any] | None = None  # the trainer the session belongs to
        self._training_epoch: int | None = None  # trained, not yet validated
        self._last_epoch = 0

    def events(self) -> dict[str, Callback]:
        """Return the ultralytics events these callbacks handle."""
        return {
            "on_pretrain_routine_start": self.on_pretrain_routine_start,
            "on_pretrain_routine_end": self.on_pretrain_routine_start,  # attached after __init__
            "on_train_epoch_end": self.on_train_epoch_end,
            "on_fit_epoch_end": self.on_fit_epoch_end,
            "on_model_save": self.on_model_save,
            "on_train_end": self.on_train_end,
        }

    def on_pretrain_routine_start(self, trainer: Any) -> None:
        """Open the session of this training run (once per trainer)."""
        remove_stock_hub_callbacks(trainer.callbacks)
        if self._trainer is not None and self._trainer() is trainer:
            return
        if self.session is not None:  # an earlier run of these callbacks never reached its end
            self.session.finish("failed")
        self._trainer = weakref.ref(trainer)
        self._training_epoch, self._last_epoch = None, 0
        args = dict(vars(trainer.args))
        identifier = self.hub_model or model_file_name(args.get("model"))
        self.session = HUBTrainingSession.create_session(
            identifier, None if self.hub_model else args, **self.session_options
        )
        self.model_url = self.session.model_url if self.session else None
        if self.session is None:
            logger.info("trainhub: the ultralytics callbacks are idle for this run")

    def on_train_epoch_end(self, trainer: Any) -> None:
        """Note the epoch whose validation comes next."""
        self._training_epoch = int(trainer.epoch)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        """Journal the epoch's losses and validation metrics (and the model's size at epoch 0).

        The call after training, with best.pt's final validation, goes to the last epoch, as
        the stock HUB client does; ultralytics 8.4 numbers it one past the last epoch instead.
        """
        if self.session is None:
            return
        if self._training_epoch is not None:
            self._last_epoch, self._training_epoch = self._training_epoch, None
        values = {
            **trainer.label_loss_items(trainer.tloss, prefix="train"),
            **(trainer.metrics or {}),
        }
        if self._last_epoch == 0:
            values.update(model_info(trainer))
        self.session.metrics_queue[self._last_epoch] = numeric_metrics(values)
        self.session.upload_metrics()

    def on_model_save(self, trainer: Any) -> None:
        """Queue last.pt as the checkpoint of this epoch."""
        if self.session is None:
            return
        is_best = trainer.best_fitness is not None and trainer.best_fitness == trainer.fitness
        self.session.upload_model(int(trainer.epoch), trainer.last, is_best=bool(is_best))

    def on_train_end(self, trainer: Any) -> None:
        """Send everything left, then best.pt as the final weights, and close the session."""
        session, self.session = self.session, None
        if session is None:
            return
        map_value = numeric_metrics(trainer.metrics or {}).get(FINAL_MAP_KEY) or 0.0
        session.upload_model(self._last_epoch, trainer.best, map=map_value, final=True)
        session.finish()  # no-op after a final upload; closes the session if best.pt was missing


def add_trainhub_callbacks(
    model_or_trainer: Any, hub_model: str | None = None, **session_options: Any
) -> TrainhubCallbacks:
    """Attach trainhub callbacks to a YOLO model (before `train()`) or to a trainer.

    `hub_model` names an existing hub model (`<hub>/models/<id>`, `<key>_<id>`, an id); without
    it each run creates a new model from the trainer's `model=` and arguments. `session_options`
    go to `HUBTrainingSession` (`url`, `api_key`, `outbox`, `flush_timeout_s`, `progress`, ...).
    The stock ultralytics 8.3 HUB callbacks are removed, so nothing is sent twice.
    """
    callbacks = TrainhubCallbacks(hub_model, session_options)
    if hasattr(model_or_trainer, "callbacks"):
        remove_stock_hub_callbacks(model_or_trainer.callbacks)
    for event, callback in callbacks.events().items():
        model_or_trainer.add_callback(event, callback)
    return callbacks


def remove_stock_hub_callbacks(callbacks: MutableMapping[str, list[Callback]]) -> None:
    """Drop ultralytics 8.3's own HUB callbacks from a callbacks dict, in place.

    The lists are changed in place: the trainer may be iterating one of them right now, and the
    stock callbacks always come after ours there, so the iteration simply never reaches them.
    """
    for event in STOCK_HUB_EVENTS:
        handlers = callbacks.get(event)
        if handlers:
            handlers[:] = [h for h in handlers if getattr(h, "__module__", "") != STOCK_HUB_MODULE]


def model_file_name(model: Any) -> str:
    """Return the trainer's `model=` as a file name (`yolo11n` -> `yolo11n.pt`, as ultralytics)."""
    name = str(model or "")
    return f"{name}.pt" if name and PurePath(name).suffix == "" else name


def model_info(trainer: Any) -> dict[str, Any]:
    """Return parameters, GFLOPs and speed, as the stock HUB callback sends at epoch 0."""
    from ultralytics.utils.torch_utils import (  # type: ignore[import-not-found]  # not in dev venv
        model_info_for_loggers,
    )

    return dict(model_info_for_loggers(trainer))
