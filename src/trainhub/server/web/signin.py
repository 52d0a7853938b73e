"""Sign in with an API key (`/login`) and sign out (`/logout`).

The key is checked like the API checks it (`services.identity.lookup_key`); the browser then
keeps only a random cookie naming a new server-side session (web/auth.py). The sign-in page and
form are public; signing out ends the session and needs its CSRF token.
"""

from typing import Annotated

from fastapi import Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from trainhub.server.deps import public
from trainhub.server.errors import RateLimitedError
from trainhub.server.services.identity import lookup_key
from trainhub.server.state import request_hub
from trainhub.server.web import csrf
from trainhub.server.web.auth import SignedIn, end_session, is_https, session_user, start_session
from trainhub.server.web.render import render
from trainhub.server.web.routing import create_router, safe_next, see_other

router = create_router()
LOGIN_TOKEN_MAX_AGE_S = 3600
Next = Annotated[str | None, Query(max_length=2000)]


def _login_page(
    request: Request, next_path: str, *, error: str | None = None, status: int = 200
) -> Response:
    token = csrf.create_login_token()
    response = render(
        request,
        "login.html",
        None,
        status=status,
        login_token=token,
        next_path=next_path,
        error=error,
        signed_out=request.query_params.get("signed_out") == "1",
    )
    response.set_cookie(
        csrf.LOGIN_COOKIE,
        token,
        max_age=LOGIN_TOKEN_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
        path="/login",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
@public
def login_page(request: Request, next: Next = None) -> Response:
    """Show the sign-in form (or go on, when the browser is signed in already)."""
    if session_user(request) is not None:
        return see_other(safe_next(next))
    return _login_page(request, safe_next(next))


def _check_rate(request: Request) -> None:
    client = request.client.host if request.client else "unknown"
    decision = request_hub(request).rate_limiter.hit(f"login:{client}", anonymous=True)
    if not decision.allowed:
        raise RateLimitedError("too many sign-in attempts; wait a minute", decision.headers())


@router.post("/login", response_class=HTMLResponse)
@public
async def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the pasted API key and sign the browser in as its owner."""
    csrf.check_login_token(request, csrf_token)
    _check_rate(request)
    principal = await run_in_threadpool(lookup_key, request_hub(request).db, api_key.strip())
    if principal is None:
        message = "That API key is not valid or was revoked. Paste a current key."
        return await run_in_threadpool(
            _login_page, request, safe_next(next), error=message, status=401
        )
    response = see_other(safe_next(next))
    await run_in_threadpool(start_session, request, response, principal)
    response.delete_cookie(csrf.LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout", dependencies=[Depends(csrf.require_csrf)])
def logout(request: Request, user: SignedIn) -> Response:
    """Sign the browser out: the session ends on the server, for every copy of its cookie."""
    response = see_other("/login?signed_out=1")
    end_session(request, response, user)
    return response
