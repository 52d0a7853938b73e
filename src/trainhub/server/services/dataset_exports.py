"""NDJSON exports of hosted datasets, for `data=ul://OWNER/datasets/SLUG` (ultralytics 8.4).

The first export of a dataset version reads its archive once (archives/export.py), stores each
image as a blob of its own (content-addressed within the dataset) and a manifest of splits,
labels and sizes; later exports reuse them. The NDJSON itself is rendered per download, because
its image URLs are signed for the reader and expire (docs/protocol/platform.md §9.10).
"""

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from trainhub.server.archives.export import HEAD_BYTES, Manifest, build_manifest
from trainhub.server.db import dataset_exports as queries
from trainhub.server.db import owned
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import DatasetRow
from trainhub.server.errors import HubError, NotFoundError
from trainhub.server.services.blobs import delete_garbage
from trainhub.server.services.names import find_named_dataset
from trainhub.server.signing import safe_name, verify_token
from trainhub.server.storage import BlobWriter, Storage

logger = logging.getLogger(__name__)
NDJSON_LABEL = "ndjson"
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ExportRef:
    """An export ready to download: its dataset, version and file name."""

    dataset_id: str
    archive_sha256: str
    file_name: str


@dataclass(frozen=True)
class OpenExport:
    """A downloaded export: its manifest and the reader its link was made for."""

    dataset_id: str
    dataset_name: str
    reader: str | None
    manifest: Manifest


class ExportGoneError(HubError):
    """A bad, expired or stale export link: 404 that names nothing."""

    status = 404


def export_file_name(dataset: DatasetRow) -> str:
    """Return the version-unique file name of a dataset's NDJSON export."""
    return f"{safe_name(dataset.name)}-{(dataset.sha256 or '')[:8]}.ndjson"


def _image_label(sha256: str, name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    return f"img-{sha256}.{suffix if suffix.isalnum() and len(suffix) <= 5 else 'img'}"


def _spool(storage: Storage, dataset: DatasetRow) -> BlobWriter:
    """Copy the dataset's archive into a temp file of the storage (abort it when done)."""
    if not dataset.blob_key:
        raise NotFoundError("dataset archive", dataset.id)
    writer = storage.create_writer()
    try:
        size = storage.size(dataset.blob_key)
        for chunk in storage.iter_range(dataset.blob_key, 0, size - 1) if size else ():
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer


def _build(storage: Storage, dataset: DatasetRow) -> tuple[str, list[str], int]:
    """Read the archive into image blobs and a manifest blob; return (manifest key, keys, n)."""
    published: list[str] = []

    def store(name: str, fh: IO[bytes]) -> tuple[str, bytes]:
        writer, head = storage.create_writer(), b""
        try:
            while chunk := fh.read(CHUNK_BYTES):
                head += chunk[: max(0, HEAD_BYTES - len(head))]
                writer.write(chunk)
            label = _image_label(writer.hexdigest(), name)
            key = f"datasets/{dataset.id}/{label}"
            writer.publish(key)
        except BaseException:
            writer.abort()
            raise
        published.append(key)
        return label, head

    archive = _spool(storage, dataset)
    try:
        manifest = build_manifest(archive.temp_path, dataset.filename or "dataset.zip", store)
        writer = storage.create_writer()
        writer.write(json.dumps(manifest.to_json(), separators=(",", ":")).encode())
        manifest_key = f"datasets/{dataset.id}/ndjson-{(dataset.sha256 or '')[:16]}.json"
        writer.publish(manifest_key)
    except BaseException:
        archive.abort()
        raise
    archive.abort()
    return manifest_key, published, len(manifest.images)


def export_dataset(
    db: Database, storage: Storage, reader_id: str, owner: str, slug: str
) -> ExportRef:
    """Return the NDJSON export of the dataset `owner/datasets/slug`, building it on first use."""
    with db.read() as session:
        dataset = find_named_dataset(session, reader_id, owner, slug)
        if not dataset.sha256:
            raise NotFoundError("dataset archive", f"{owner}/datasets/{slug}")
        built = queries.find_export(session, dataset.seq, dataset.sha256)
    ref = ExportRef(dataset.id, dataset.sha256, export_file_name(dataset))
    if built is not None:
        return ref
    logger.info("building the NDJSON export of dataset %s (%s)", dataset.id, dataset.sha256[:8])
    manifest_key, keys, images = _build(storage, dataset)
    with db.write() as session:
        current = owned.load(session, DatasetRow, dataset.id, reader_id)
        if current.sha256 != dataset.sha256:  # a new version arrived meanwhile: try again later
            raise NotFoundError("dataset version", dataset.sha256[:8])
        garbage = queries.record_export(
            session, current, dataset.sha256, manifest_key, [*keys, manifest_key], images
        )
    delete_garbage(storage, garbage)
    return ref


def _read_blob(storage: Storage, key: str) -> bytes:
    size = storage.size(key)
    return b"".join(storage.iter_range(key, 0, size - 1)) if size else b""


def open_export(
    db: Database, storage: Storage, secret: bytes, token: str, dataset_id: str, name: str
) -> OpenExport:
    """Return the export a download link names; ExportGoneError (404) for a bad or stale one."""
    with db.read() as session:
        dataset = queries.find_dataset(session, dataset_id)
        built = (
            queries.find_export(session, dataset.seq, dataset.sha256)
            if dataset is not None and dataset.sha256
            else None
        )
    if dataset is None or built is None or name != export_file_name(dataset):
        raise ExportGoneError("export link is invalid or stale; export the dataset again")
    grant = verify_token(secret, token, dataset_id, NDJSON_LABEL, dataset.sha256 or "")
    readable = grant is not None and (dataset.public or grant.reader == dataset.owner_id)
    if grant is None or not readable:
        raise ExportGoneError("export link is invalid or expired; export the dataset again")
    manifest = Manifest.from_json(json.loads(_read_blob(storage, built.manifest_key)))
    return OpenExport(dataset.id, dataset.name, grant.reader, manifest)


def image_links(export: OpenExport) -> Iterator[tuple[str, str, str]]:
    """Yield (label, sha256, file name) of each image, as its signed download link names it."""
    for image in export.manifest.images:
        sha256 = image.stored[4:68]
        yield image.stored, sha256, f"{sha256[:32]}{PurePosixPath(image.stored).suffix}"
