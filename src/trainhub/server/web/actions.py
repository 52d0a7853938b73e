"""Model actions from the dashboard: rename, public/private, stop training, reset, delete.

Each is a POST form with the session's CSRF token, and each calls the same operation as the API
(services/models.py), so they cannot drift.
"""

from typing import Annotated

from fastapi import Depends, Form
from fastapi.responses import RedirectResponse

from trainhub.server.deps import Db, Heartbeats, SettingsDep, StorageDep
from trainhub.server.errors import ValidationError
from trainhub.server.services import models, runs
from trainhub.server.web.auth import SignedIn
from trainhub.server.web.csrf import require_csrf
from trainhub.server.web.routing import create_router, see_other

router = create_router()
PROTECTED = [Depends(require_csrf)]
Confirm = Annotated[str | None, Form(max_length=10)]


def _confirmed(confirm: str | None, what: str) -> None:
    if confirm != "yes":
        raise ValidationError(f"tick the box to confirm that you want to {what} this model")


@router.post("/models/{model_id}/rename", dependencies=PROTECTED)
def rename_model(
    model_id: str, user: SignedIn, db: Db, name: Annotated[str, Form(max_length=200)]
) -> RedirectResponse:
    """Rename a model."""
    if not name.strip():
        raise ValidationError("a model needs a name; type one")
    models.update_model(db, model_id, user.user_id, {"meta": {"name": name.strip()}})
    return see_other(f"/models/{model_id}?notice=renamed")


@router.post("/models/{model_id}/visibility", dependencies=PROTECTED)
def set_visibility(
    model_id: str, user: SignedIn, db: Db, public: Annotated[str, Form(max_length=10)]
) -> RedirectResponse:
    """Make a model public (readable by every user) or private."""
    if public not in ("true", "false"):
        raise ValidationError("choose public or private")
    models.update_model(db, model_id, user.user_id, {"public": public == "true"})
    return see_other(f"/models/{model_id}?notice=visibility")


@router.post("/models/{model_id}/stop", dependencies=PROTECTED)
def stop_training(model_id: str, user: SignedIn, db: Db, settings: SettingsDep) -> RedirectResponse:
    """Ask the model's ultralytics 8.4 run to stop (docs/protocol/platform.md §9.5)."""
    state = runs.request_cancel(db, model_id, user.user_id, runs.Silence.of_settings(settings))
    notice = "stop-requested" if state == "requested" else "stopped"
    return see_other(f"/models/{model_id}?notice={notice}")


@router.post("/models/{model_id}/reset", dependencies=PROTECTED)
def reset_model(
    model_id: str,
    user: SignedIn,
    db: Db,
    storage: StorageDep,
    heartbeats: Heartbeats,
    confirm: Confirm = None,
) -> RedirectResponse:
    """Return a model to `new`: its metrics, checkpoints, weights and agents are removed."""
    _confirmed(confirm, "reset")
    models.reset_model(db, storage, heartbeats, model_id, user.user_id)
    return see_other(f"/models/{model_id}?notice=reset")


@router.post("/models/{model_id}/delete", dependencies=PROTECTED)
def delete_model(
    model_id: str,
    user: SignedIn,
    db: Db,
    storage: StorageDep,
    heartbeats: Heartbeats,
    confirm: Confirm = None,
    hard: Annotated[str | None, Form(max_length=10)] = None,
) -> RedirectResponse:
    """Delete a model: hidden with its data kept, or with `hard`, removed with its files."""
    _confirmed(confirm, "delete")
    models.delete_model(db, storage, heartbeats, model_id, user.user_id, hard=hard == "yes")
    return see_other("/models?notice=model-deleted")
