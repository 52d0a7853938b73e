"""`POST /api/webhooks/training/metrics`: every event of a run reported by ultralytics 8.4.

See docs/protocol/platform.md §4.1-§4.4 and §9.1-§9.8. Each event is parsed and handed to its
service; the answer is always a non-empty JSON object, and 401 comes only from a bad key (a 401
silences the client for the rest of its run).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from trainhub.protocol import paths
from trainhub.protocol.platform import (
    UNSENT_EVENTS,
    CheckpointSaved,
    ConsoleOutput,
    EpochEnd,
    EventAnswer,
    PlatformEvent,
    TrainingComplete,
    TrainingStarted,
)
from trainhub.server.bodies import json_body_schema, validated
from trainhub.server.db.engine import Database
from trainhub.server.deps import CurrentUser, Db, Principal, SettingsDep, StorageDep
from trainhub.server.errors import ValidationError
from trainhub.server.platform.routing import create_router, platform_body
from trainhub.server.services import console, runs, staging
from trainhub.server.services.runs import Silence
from trainhub.server.state import request_hub
from trainhub.server.storage import Storage

router = create_router()
Event = Annotated[PlatformEvent, Depends(platform_body(PlatformEvent))]


@dataclass(frozen=True)
class Context:
    """What handling one event needs: the caller, the hub's handles and the event."""

    user: Principal
    db: Database
    storage: Storage
    silence: Silence
    event: PlatformEvent

    @property
    def model_id(self) -> str:
        """Return the event's modelId; 422 when it has none (only a run's start may lack it)."""
        if not self.event.modelId:
            raise ValidationError(
                f"{self.event.event} needs the modelId that training_started answered"
            )
        return self.event.modelId


def _epoch_end(ctx: Context) -> dict[str, Any]:
    data = validated(EpochEnd, ctx.event.data)
    cancel = runs.record_epoch(ctx.db, ctx.user.user_id, ctx.model_id, data, ctx.silence)
    return {"cancelled": True} if cancel else {}


def _console_output(ctx: Context) -> dict[str, Any]:
    data = validated(ConsoleOutput, ctx.event.data)
    console.record_chunk(ctx.db, ctx.user.user_id, ctx.model_id, data, ctx.silence)
    return {}


def _checkpoint_saved(ctx: Context) -> dict[str, Any]:
    data = validated(CheckpointSaved, ctx.event.data)
    reason = staging.save_checkpoint(
        ctx.db, ctx.storage, ctx.user.user_id, ctx.model_id, data, ctx.silence
    )
    return {"ignored": True, "reason": reason} if reason else {}


def _training_complete(ctx: Context) -> dict[str, Any]:
    data = validated(TrainingComplete, ctx.event.data)
    runs.finish_run(ctx.db, ctx.storage, ctx.user.user_id, ctx.model_id, data, ctx.silence)
    return {}


def _unsent(ctx: Context) -> dict[str, Any]:
    # sent only by Ultralytics' cloud workers; the run is alive, nothing else is stored
    if ctx.event.modelId:
        runs.note_event(ctx.db, ctx.user.user_id, ctx.event.modelId, ctx.silence)
    return {"ignored": True, "reason": f"{ctx.event.event} is not stored by this hub"}


HANDLERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "epoch_end": _epoch_end,
    "console_output": _console_output,
    "checkpoint_saved": _checkpoint_saved,
    "training_complete": _training_complete,
    **dict.fromkeys(UNSENT_EVENTS, _unsent),
}


def _training_started(ctx: Context, request: Request) -> dict[str, Any]:
    data = validated(TrainingStarted, ctx.event.data)
    started = runs.start_run(ctx.db, ctx.user.user_id, ctx.user.name, ctx.event, data, ctx.silence)
    links = request_hub(request).links
    answer: dict[str, Any] = {
        "modelId": started.model_id,
        "modelUrl": links.model_page(started.model_id),
        "modelSlug": started.slug,
    }
    if started.run_id is not None:
        answer["runId"] = started.run_id
    if started.cancelled:
        answer["cancelled"] = True
    return answer


@router.post(
    paths.PLATFORM_EVENTS,
    response_model=EventAnswer,
    response_model_exclude_none=True,
    openapi_extra=json_body_schema(PlatformEvent),
)
def training_event(
    request: Request,
    user: CurrentUser,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
    event: Event,
) -> dict[str, Any]:
    """Record one event of a training run: its start, an epoch, console lines, weights, its end.

    `training_started` answers the model and run to report to; `epoch_end` may answer
    `cancelled: true`, which stops the trainer.
    """
    ctx = Context(user, db, storage, Silence.of_settings(settings), event)
    if event.event == "training_started":
        extra = _training_started(ctx, request)
    else:
        extra = HANDLERS[event.event](ctx)
    return {"received": True, "event": event.event, **extra}
