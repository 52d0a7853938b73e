"""Signed downloads: which file a link names, and whether it still grants reading it."""

from trainhub.protocol.ids import is_id
from trainhub.server.db.engine import Database
from trainhub.server.db.files import StoredFile, find_file
from trainhub.server.errors import HubError
from trainhub.server.signing import verify_token

LINK_GONE = "download link is invalid or expired; read the object again for a fresh link"


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
