"""Refuse requests whose Host header is not this server's (DNS rebinding, docs/security.md §2.4)."""

import json

from starlette.types import ASGIApp, Receive, Scope, Send


class HostGuard:
    """ASGI middleware: answer 400 JSON unless the Host header names an allowed host."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.allowed:
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.lower() in self.allowed:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "success": False,
                "message": f"host {host[:100]!r} is not served here; "
                "use the server's public URL or add it to TRAINHUB_ALLOWED_HOSTS",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
