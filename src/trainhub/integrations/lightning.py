"""Report a PyTorch Lightning (`lightning` 2.x) training run to a trainhub hub, as a Logger.

    trainer = L.Trainer(max_epochs=10, logger=TrainhubLogger())   # or TrainhubLogger(model_url)

Metrics are journaled per epoch (Lightning's `epoch` key, else the trainer's current epoch),
every checkpoint ModelCheckpoint saves is queued as the hub's checkpoint, and the end of
`fit` sends the best checkpoint as the final weights after everything else. When the hub cannot
be used the logger does nothing and training goes on. Only the public client API is used.
"""

import logging
from argparse import Namespace
from typing import Any

# Lightning is not installed where mypy runs: the base class and decorator are Any there.
from lightning.pytorch.loggers import Logger  # type: ignore[import-not-found]
from lightning.pytorch.utilities.rank_zero import (  # type: ignore[import-not-found]
    rank_zero_only,
)

from trainhub import HUBTrainingSession
from trainhub.integrations.metrics import numeric_metrics

logger = logging.getLogger(__name__)

FIT = "fit"  # lightning's TrainerFn.FITTING


class TrainhubLogger(Logger):  # type: ignore[misc]  # Logger is Any where lightning is absent
    """A Lightning logger that sends metrics, checkpoints and the final weights to a hub.

    `hub_model` names an existing hub model (`<hub>/models/<id>`, `<key>_<id>`, an id); without
    it `fit` creates a new model called `name` (default: the LightningModule's class name).
    `session_options` go to `HUBTrainingSession` (`url`, `api_key`, `outbox`, ...).
    """

    def __init__(
        self, hub_model: str | None = None, *, name: str | None = None, **session_options: Any
    ) -> None:
        super().__init__()
        self.hub_model = hub_model
        self.model_name = name
        self.session_options = session_options
        self.session: HUBTrainingSession | None = None
        self.model_url: str | None = None  # the hub model of this run
        self._hyperparams: dict[str, Any] = {}
        self._trainer: Any = None
        self._checkpoints: Any = None  # the ModelCheckpoint that saved last
        self._epoch = 0

    @property
    def name(self) -> str:
        """Return the logger's name."""
        return "trainhub"

    @property
    def version(self) -> str:
        """Return the hub model id of this run ("" before `fit` starts or without a hub)."""
        return (self.session.model_id if self.session else None) or ""

    @rank_zero_only  # type: ignore[untyped-decorator]  # Any where lightning is absent
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Keep the hyperparameters: batch size and data name go into the new hub model."""
        self._hyperparams.update(vars(params) if isinstance(params, Namespace) else dict(params))

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Open the hub session when `fit` starts (Lightning calls this once per run)."""
        self._trainer = trainer_of(model)
        stage = getattr(getattr(getattr(self._trainer, "state", None), "fn", None), "value", None)
        if stage != FIT or self.session is not None:
            return
        name = self.model_name or type(model).__name__
        self.session = HUBTrainingSession.create_session(
            self.hub_model or f"{name}.yaml",  # a local file name: a new model, called `name`
            None if self.hub_model else self._model_args(),
            name=name,
            **self.session_options,
        )
        self.model_url = self.session.model_url if self.session else None
        if self.session is None:
            logger.info("trainhub: the Lightning logger is idle for this run")

    def _model_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        max_epochs = getattr(self._trainer, "max_epochs", None)
        if isinstance(max_epochs, int) and max_epochs > 0:
            args["epochs"] = max_epochs
        for key in ("batch_size", "batch"):
            if isinstance(self._hyperparams.get(key), int):
                args["batch"] = self._hyperparams[key]
        for key in ("data", "dataset"):
            if isinstance(self._hyperparams.get(key), str):
                args["data"] = self._hyperparams[key]
        return args

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Journal the metrics under their epoch (merged with what that epoch already has)."""
        if self.session is None:
            return
        values = dict(metrics)
        epoch = values.pop("epoch", None)
        if epoch is None:
            epoch = getattr(self._trainer, "current_epoch", self._epoch)
        self._epoch = int(epoch)
        self.session.metrics_queue[self._epoch] = numeric_metrics(values)
        self.session.upload_metrics()

    @rank_zero_only  # type: ignore[untyped-decorator]
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Queue the checkpoint just saved as the hub's checkpoint of this epoch."""
        if self.session is None:
            return
        self._checkpoints = checkpoint_callback
        path = (
            getattr(checkpoint_callback, "_last_checkpoint_saved", "")
            or checkpoint_callback.last_model_path
            or checkpoint_callback.best_model_path
        )
        if path:
            epoch = getattr(self._trainer, "current_epoch", self._epoch)
            is_best = path == checkpoint_callback.best_model_path
            self.session.upload_model(int(epoch), path, is_best=is_best)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def finalize(self, status: str) -> None:
        """Send everything left; after a successful `fit`, the best checkpoint as final weights."""
        session, self.session = self.session, None
        if session is None:
            return
        if status not in ("success", "finished"):
            session.finish("failed")
            return
        checkpoints = self._checkpoints or getattr(self._trainer, "checkpoint_callback", None)
        best = getattr(checkpoints, "best_model_path", "") or ""
        if not best:
            logger.warning(
                "trainhub: no checkpoint was saved, so the hub model is not marked trained; "
                "keep Lightning's ModelCheckpoint on to send final weights"
            )
            session.finish()
            return
        score = getattr(checkpoints, "best_model_score", None)
        session.upload_model(
            self._epoch, best, map=float(score) if score is not None else 0.0, final=True
        )
        session.finish()


def trainer_of(module: Any) -> Any:
    """Return the Trainer a LightningModule is attached to, or None."""
    try:
        return module.trainer
    except (AttributeError, RuntimeError):  # not attached to a Trainer
        return None
