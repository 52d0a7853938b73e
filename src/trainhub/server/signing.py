"""Signed, expiring download URLs: `/files/<token>/<id>/<label>/<name>`.

See docs/protocol/hub-v1.md §5.25 and §16.1, and docs/security.md §2.13.

ultralytics downloads weights and datasets with plain urllib and no headers, so the URL carries
its own credential. The token signs the object id, the label, the content hash and the reader it
was made for, with an expiry; a changed file, an edited URL or an old token all give 404. The
download checks again that the reader may still read the object, so a link stops working as soon
as its object turns private or is deleted. `<id>/best.pt` (or `<id>/<file name>`) stays in the
path for hub-sdk, and the last segment changes with every version so name-based caches never
reuse a stale file.
"""

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from urllib.parse import quote

from trainhub.protocol.ids import is_id

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_EXPIRES = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() also takes "²" and "٣"
ANYONE = "-"  # the reader of a link made for an anonymous caller


def _signature(
    secret: bytes, expires: int, reader: str, object_id: str, label: str, sha256: str
) -> str:
    message = f"{expires}|{reader}|{object_id}|{label}|{sha256}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def safe_name(text: str) -> str:
    """Return `text` with everything but letters, digits, '.', '_' and '-' replaced by '_'."""
    return _SAFE_NAME.sub("_", text).strip("._") or "file"


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: reading one file version as `reader` (None: anyone)."""

    reader: str | None


def create_token(
    secret: bytes, object_id: str, label: str, sha256: str, ttl_s: int, reader: str | None = None
) -> str:
    """Return a token valid for `ttl_s` seconds for this object, label, content and reader."""
    expires = int(time.time()) + ttl_s
    who = reader or ANYONE
    return f"{expires}.{who}.{_signature(secret, expires, who, object_id, label, sha256)}"


def verify_token(
    secret: bytes, token: str, object_id: str, label: str, sha256: str
) -> Grant | None:
    """Return the grant of a token this server made for this content, None if bad or expired."""
    expires_text, _, rest = token.partition(".")
    reader, _, signature = rest.partition(".")
    if not _EXPIRES.fullmatch(expires_text) or int(expires_text) < time.time():
        return None
    if reader != ANYONE and not is_id(reader):
        return None
    expected = _signature(secret, int(expires_text), reader, object_id, label, sha256)
    if not hmac.compare_digest(signature, expected):
        return None
    return Grant(None if reader == ANYONE else reader)


def download_path(token: str, object_id: str, label: str, name: str) -> str:
    """Return the path part of a download URL."""
    return f"/files/{token}/{object_id}/{quote(label, safe='')}/{quote(name, safe='')}"


def _upload_signature(secret: bytes, upload_id: str, expires: int) -> str:
    message = f"platform-upload|{expires}|{upload_id}".encode()  # never a download's message
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def create_upload_token(secret: bytes, upload_id: str, expires: int) -> str:
    """Return the token of a Platform upload URL, valid until `expires` (Unix seconds).

    See docs/protocol/platform.md §9.7: the client PUTs without a key, so the URL carries one.
    """
    return f"{expires}.{_upload_signature(secret, upload_id, expires)}"


def verify_upload_token(secret: bytes, token: str, upload_id: str) -> bool | None:
    """Tell whether an upload token is this server's for `upload_id`: None if forged, False if
    expired, True if valid now."""
    expires_text, _, signature = token.partition(".")
    if not _EXPIRES.fullmatch(expires_text):
        return None
    expected = _upload_signature(secret, upload_id, int(expires_text))
    if not hmac.compare_digest(signature, expected):
        return None
    return int(expires_text) >= time.time()
