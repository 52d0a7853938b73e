"""What a run reported through the Platform protocol left beyond metrics and weights.

`POST /v1/models/{id}/cancel` asks its trainer to stop, `GET /v1/models/{id}/console` reads its
console as text, `GET /v1/models/{id}/runs` its runs: environment, final results, class names,
curves. See docs/protocol/platform.md §9.5 and §9.8.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.server.deps import CurrentUser, Db, OptionalUser, SettingsDep, caller_id
from trainhub.server.records import run_record
from trainhub.server.services import console, runs

router = APIRouter(tags=["runs (ultralytics 8.4)"])
CANCEL_MESSAGES = {
    "requested": "stop requested; the trainer stops within an epoch and uploads what it has",
    "cancelled": "the run was silent, so no trainer can hear the stop; the model is cancelled",
}


@router.post(paths.MODEL_CANCEL, response_model=Envelope[dict[str, Any]])
def cancel_training(
    model_id: str, user: CurrentUser, db: Db, settings: SettingsDep
) -> dict[str, Any]:
    """Ask the model's trainer to stop (owner only); it hears it in its next `epoch_end`."""
    state = runs.request_cancel(db, model_id, user.user_id, runs.Silence.of_settings(settings))
    return {"success": True, "message": CANCEL_MESSAGES[state], "data": {"state": state}}


@router.get(
    paths.MODEL_CONSOLE,
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def read_console(
    model_id: str,
    user: OptionalUser,
    db: Db,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> PlainTextResponse:
    """Return the model's console output as plain text, colour codes stripped, in order.

    `after` (a chunk id) keeps only what came after it; `X-Console-Chunk` names the newest.
    """
    found = console.read_console(db, model_id, caller_id(user), after=after)
    headers = {"Cache-Control": "no-store"}
    if found.chunks:
        headers["X-Console-Chunk"] = str(found.chunks[-1][0])
    return PlainTextResponse(found.text(), headers=headers)


@router.get(paths.MODEL_RUNS, response_model=Envelope[list[dict[str, Any]]])
def read_runs(model_id: str, user: OptionalUser, db: Db) -> dict[str, Any]:
    """Return the model's runs, oldest first: state, environment, final results and curves."""
    views = runs.read_runs(db, model_id, caller_id(user))
    return {"success": True, "data": [run_record(v.run, v.liveness) for v in views]}
