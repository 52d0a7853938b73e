"""Signed, expiring download URLs: `/files/<token>/<id>/<label>/<name>` (hub-protocol.md §16.1).

ultralytics downloads weights and datasets with plain urllib and no headers, so the URL carries
its own credential. The token signs the object id, the label and the content hash with an expiry;
a changed file, an edited URL or an old token all give 404. `<id>/best.pt` (or `<id>/<file name>`)
stays in the path for hub-sdk, and the last segment changes with every version so name-based
caches never reuse a stale file.
"""

import base64
import hashlib
import hmac
import re
import time
from urllib.parse import quote

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _signature(secret: bytes, expires: int, object_id: str, label: str, sha256: str) -> str:
    message = f"{expires}|{object_id}|{label}|{sha256}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def safe_name(text: str) -> str:
    """Return `text` with everything but letters, digits, '.', '_' and '-' replaced by '_'."""
    return _SAFE_NAME.sub("_", text).strip("._") or "file"


def create_token(secret: bytes, object_id: str, label: str, sha256: str, ttl_s: int) -> str:
    """Return a token valid for `ttl_s` seconds for this object, label and content."""
    expires = int(time.time()) + ttl_s
    return f"{expires}.{_signature(secret, expires, object_id, label, sha256)}"


def is_valid_token(secret: bytes, token: str, object_id: str, label: str, sha256: str) -> bool:
    """Tell whether `token` was made by this server for this content and has not expired."""
    expires_text, _, signature = token.partition(".")
    if not expires_text.isdigit() or int(expires_text) < time.time():
        return False
    expected = _signature(secret, int(expires_text), object_id, label, sha256)
    return hmac.compare_digest(signature, expected)


def download_path(token: str, object_id: str, label: str, name: str) -> str:
    """Return the path part of a download URL."""
    return f"/files/{token}/{object_id}/{quote(label, safe='')}/{quote(name, safe='')}"
