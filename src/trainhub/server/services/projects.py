"""A project's cover image: checked to be an image, published, and recorded."""

from trainhub.server.db import owned
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ProjectRow
from trainhub.server.errors import ValidationError
from trainhub.server.multipart import UploadedFile
from trainhub.server.services.blobs import delete_garbage
from trainhub.server.storage import Storage

IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(head: bytes) -> str | None:
    """Return the media type of an image from its first bytes (PNG, JPEG, GIF, WebP)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((media for magic, media in IMAGE_MAGIC if head.startswith(magic)), None)


def check_writable(db: Database, project_id: str, user_id: str) -> None:
    """Raise (404, 403) unless `user_id` may change the project: before any byte."""
    with db.read() as session:
        owned.load(session, ProjectRow, project_id, user_id, write=True)


def set_cover(
    db: Database, storage: Storage, project_id: str, user_id: str, upload: UploadedFile
) -> ProjectRow:
    """Check that the upload is an image, then publish it as the project's cover."""
    if upload.writer.size == 0:
        raise ValidationError("the cover image is empty; choose a PNG, JPEG, GIF or WebP image")
    with upload.writer.temp_path.open("rb") as file:
        media = image_type(file.read(16))
    if media is None:
        raise ValidationError("the cover must be a PNG, JPEG, GIF or WebP image")
    sha256 = upload.writer.hexdigest()
    key = f"projects/{project_id}/cover-{sha256}"
    upload.writer.publish(key)
    try:
        with db.write() as session:
            row = owned.load(session, ProjectRow, project_id, user_id, write=True)
            old = row.cover_key
            row.cover_key, row.cover_sha256, row.cover_type = key, sha256, media
            owned.touch(row)
    except BaseException:
        storage.delete(key)
        raise
    delete_garbage(storage, [old] if old and old != key else [])
    return row
