"""Report a Hugging Face Transformers `Trainer` run to a trainhub hub, as a TrainerCallback.

    trainer = Trainer(..., callbacks=[TrainhubCallback()])   # or TrainhubCallback(model_url)

Logged and evaluation metrics are journaled per epoch (epoch `e` holds what was logged while
`state.epoch` was in (e, e+1]), each saved checkpoint's weights file is queued as the hub's
checkpoint, and the end of training sends the best (else the last) checkpoint's weights as the
final weights after everything else. When the hub cannot be used the callback does nothing and
training goes on. Only the public client API is used.
"""

import logging
import math
import os
from pathlib import Path
from typing import Any

# Transformers is not installed where mypy runs: the base class is Any there.
from transformers import TrainerCallback  # type: ignore[import-not-found]

from trainhub import HUBTrainingSession
from trainhub.integrations.metrics import numeric_metrics

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint"  # transformers' PREFIX_CHECKPOINT_DIR
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin", "adapter_model.safetensors")


class TrainhubCallback(TrainerCallback):  # type: ignore[misc]  # Any where transformers is absent
    """A TrainerCallback that sends metrics, checkpoints and the final weights to a hub.

    `hub_model` names an existing hub model (`<hub>/models/<id>`, `<key>_<id>`, an id); without
    it training creates a new model called `name` (default: the model's class name).
    `session_options` go to `HUBTrainingSession` (`url`, `api_key`, `outbox`, ...).
    """

    def __init__(
        self, hub_model: str | None = None, *, name: str | None = None, **session_options: Any
    ) -> None:
        self.hub_model = hub_model
        self.model_name = name
        self.session_options = session_options
        self.session: HUBTrainingSession | None = None
        self.model_url: str | None = None  # the hub model of the latest run
        self._last_checkpoint: Path | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Open the hub session of this run (on the main process only)."""
        if not state.is_world_process_zero:
            return
        if self.session is not None:  # an earlier run with this callback never reached its end
            self.session.finish("failed")
        model = kwargs.get("model")
        name = self.model_name or (type(model).__name__ if model is not None else "transformers")
        model_args: dict[str, Any] = {"batch": args.per_device_train_batch_size}
        if args.max_steps is None or args.max_steps <= 0:
            model_args["epochs"] = math.ceil(args.num_train_epochs)
        self._last_checkpoint = None
        self.session = HUBTrainingSession.create_session(
            self.hub_model or f"{name}.yaml",  # a local file name: a new model, called `name`
            None if self.hub_model else model_args,
            name=name,
            **self.session_options,
        )
        self.model_url = self.session.model_url if self.session else None
        if self.session is None:
            logger.info("trainhub: the Transformers callback is idle for this run")

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        """Journal what was logged under the current epoch."""
        self._journal(state, logs or {})

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        """Journal the evaluation metrics under the current epoch."""
        self._journal(state, metrics or {})

    def _journal(self, state: Any, values: dict[str, Any]) -> None:
        if self.session is None:
            return
        values = {k: v for k, v in values.items() if k != "epoch"}
        self.session.metrics_queue[epoch_index(state)] = numeric_metrics(values)
        self.session.upload_metrics()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Queue the weights file of the checkpoint just saved."""
        if self.session is None:
            return
        folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}-{state.global_step}"
        weights = weights_file(folder)
        if weights is None:
            logger.warning("trainhub: no weights file in %s; checkpoint not sent", folder)
            return
        self._last_checkpoint = folder
        is_best = state.best_model_checkpoint is not None and Path(
            state.best_model_checkpoint
        ) == Path(folder)
        self.session.upload_model(epoch_index(state), weights, is_best=is_best)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Send everything left, then the best (else the last) checkpoint's weights as final."""
        session, self.session = self.session, None
        if session is None:
            return
        best = state.best_model_checkpoint
        folder = Path(best) if best and os.path.isdir(best) else self._last_checkpoint
        weights = weights_file(folder) if folder is not None else None
        if weights is None:
            logger.warning(
                "trainhub: no checkpoint was saved, so the hub model is not marked trained; "
                "use a save_strategy other than 'no' to send final weights"
            )
            session.finish()
            return
        map_value = float(state.best_metric) if state.best_metric is not None else 0.0
        session.upload_model(epoch_index(state), weights, map=map_value, final=True)
        session.finish()


def epoch_index(state: Any) -> int:
    """Return the 0-based epoch a log belongs to: `state.epoch` 0.5 and 1.0 -> 0, 1.5 -> 1."""
    progress = round(float(state.epoch or 0.0), 6)
    return max(0, math.ceil(progress) - 1)


def weights_file(folder: Path) -> Path | None:
    """Return the weights file of a saved checkpoint folder (safetensors first), or None."""
    for name in WEIGHTS_FILES:
        if (folder / name).is_file():
            return folder / name
    return None
