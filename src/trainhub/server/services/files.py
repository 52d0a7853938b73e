"""Signed downloads: which file a link names, whether it still grants reading it, where to read it.

The `/files/...` link the server signs is the only download URL clients are given, and it is
checked on every request. With `s3_presigned_downloads`, the server then answers a GET with a
307 to a short-lived presigned URL of the bucket (signed for `s3_public_endpoint`), so the bytes
flow from the bucket to the client instead of through a replica.
"""

from trainhub.protocol.ids import is_id
from trainhub.server.db.engine import Database
from trainhub.server.db.files import StoredFile, find_file
from trainhub.server.errors import HubError
from trainhub.server.signing import verify_token
from trainhub.server.storage import Storage

LINK_GONE = "download link is invalid or expired; read the object again for a fresh link"
# a presigned URL only has to outlive the redirect; the signed link is checked again each time
PRESIGNED_TTL_S = 600


class LinkGoneError(HubError):
    """A bad, expired or stale link, or one whose reader may no longer read the object."""

    status = 404


def resolve_link(
    db: Database, secret: bytes, token: str, object_id: str, label: str, name: str
) -> StoredFile:
    """Return the file a download link names; LinkGoneError (404) names no object.

    The link must name the current version (its file name changes with every version), carry a
    token this server signed for that version, and its reader must still be able to read the
    object (it may have turned private or been deleted since).
    """
    found = None
    if is_id(object_id):
        with db.read() as session:
            found = find_file(session, object_id, label)
    if found is None or found.name != name:
        raise LinkGoneError(LINK_GONE)
    grant = verify_token(secret, token, object_id, label, found.sha256)
    if grant is None or not found.is_readable_by(grant.reader):
        raise LinkGoneError(LINK_GONE)
    return found


def presigned_location(storage: Storage, blob: StoredFile) -> str | None:
    """Return a presigned URL that reads `blob` from the bucket, None when storage has none."""
    return storage.presign_download(
        blob.key, filename=blob.name, media_type=blob.media_type, expires_s=PRESIGNED_TTL_S
    )
