"""Render dashboard templates (Jinja2, autoescaped) with what every page needs.

Pages are never cached (they show one user's objects) and carry a strict Content Security
Policy: scripts, styles and connections come from this origin only, nothing inline.
"""

import functools
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from trainhub._version import __version__
from trainhub.server.db.tables import iso, utcnow
from trainhub.server.services.sessions import SessionUser
from trainhub.server.state import request_hub
from trainhub.server.web.csrf import session_token

TEMPLATES_DIR = Path(__file__).parent / "templates"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'"
    ),
}
_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """Return how long ago `moment` was, e.g. "3 min ago" ("never" for None)."""
    if moment is None:
        return "never"
    seconds = int(((now or utcnow()) - moment).total_seconds())
    if seconds < 5:
        return "just now"
    for unit, size in _UNITS:
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def human_size(size: int | None) -> str:
    """Return a byte count for people: 1.2 MB."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def metric(value: float | None) -> str:
    """Return a metric value with four significant digits ("-" when absent)."""
    return "-" if value is None else f"{value:.4g}"


@functools.cache
def environment() -> Environment:
    """Return the Jinja2 environment of the dashboard's templates."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, size=human_size, metric=metric, iso=iso)
    return env


def static_url(path: str) -> str:
    """Return the URL of a static file; the version in the query busts browser caches."""
    return f"/static/{path}?v={__version__}"


def render(
    request: Request,
    template: str,
    user: SessionUser | None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render `template` for `user` (None on the sign-in and error pages)."""
    links = request_hub(request).links
    token = session_token(links.secret, user.session_id) if user is not None else ""
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            path=request.url.path,
            user=user,
            csrf=token,
            public_url=links.public_url,
            version=__version__,
            static=static_url,
            now=utcnow(),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status, headers={**(headers or {}), **SECURITY_HEADERS})
