"""The API reference pages: /docs (Swagger UI) and /redoc (ReDoc), with no CDN.

FastAPI's own pages load both from a CDN and start Swagger UI with an inline script. These
load the copies vendored in web/static/vendor/ (versions in docs/dashboard.md) and a static
start-up script, under a Content Security Policy that allows this origin only, so they work
offline and nothing from elsewhere runs on the dashboard's origin (docs/security.md §2.4).
"""

from html import escape

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse

STATIC = "/static"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)
# ReDoc 2.5.4 adds two <style> elements of its own: perfect-scrollbar's fixed CSS, and an empty
# one that styled-components fills through the CSSOM (which CSP does not police). Their hashes
# allow exactly these two and no other inline style; a new ReDoc version may need new ones
# (the browser test of /redoc fails on any CSP violation). Its search index runs in a worker
# made from a blob: URL, which only the page's own scripts can create. Its footer logo, the one
# thing it loads from elsewhere (cdn.redoc.ly), stays blocked.
REDOC_STYLE_HASHES = (
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # perfect-scrollbar
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # "" (styled-components)
)
REDOC_CONTENT_SECURITY_POLICY = (
    CONTENT_SECURITY_POLICY.replace(
        "style-src 'self'", f"style-src 'self' {' '.join(REDOC_STYLE_HASHES)}"
    )
    + "; worker-src blob:"
)
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{stylesheet}">
</head>
<body>
{body}
</body>
</html>
"""


def install_api_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc for `app`, which must be built with docs_url=redoc_url=None."""
    openapi_url = escape(app.openapi_url or "/openapi.json")
    title = escape(f"{app.title} {app.version} - API reference")
    swagger = _PAGE.format(
        title=title,
        stylesheet=f"{STATIC}/vendor/swagger-ui/swagger-ui.css",
        body=(
            f'<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>\n'
            f'<script src="{STATIC}/vendor/swagger-ui/swagger-ui-bundle.js"></script>\n'
            f'<script src="{STATIC}/apidocs.js"></script>'
        ),
    )
    redoc = _PAGE.format(
        title=title,
        stylesheet=f"{STATIC}/apidocs.css",
        body=(
            f'<redoc spec-url="{openapi_url}"></redoc>\n'
            f'<script src="{STATIC}/vendor/redoc/redoc.standalone.js"></script>'
        ),
    )
    swagger_headers = {**_HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    redoc_headers = {**_HEADERS, "Content-Security-Policy": REDOC_CONTENT_SECURITY_POLICY}

    async def swagger_page(request: Request) -> HTMLResponse:
        return HTMLResponse(swagger, headers=swagger_headers)

    async def redoc_page(request: Request) -> HTMLResponse:
        return HTMLResponse(redoc, headers=redoc_headers)

    app.add_route("/docs", swagger_page, include_in_schema=False)
    app.add_route("/redoc", redoc_page, include_in_schema=False)
