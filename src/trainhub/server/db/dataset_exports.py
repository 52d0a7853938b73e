"""Queries of NDJSON dataset exports: find one, record one, and the blobs they leave behind.

An export belongs to one version (archive sha256) of a dataset. Its image blobs are
content-addressed per dataset, so exports of two versions may share blobs: a key becomes garbage
only when no remaining export of the dataset names it.
"""

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from trainhub.protocol.ids import is_id
from trainhub.server.db.tables import DatasetExportRow, DatasetRow


def find_dataset(session: Session, dataset_id: str) -> DatasetRow | None:
    """Return the live dataset `dataset_id` (who may read it is the caller's question)."""
    if not is_id(dataset_id):
        return None
    return session.scalars(
        select(DatasetRow).where(DatasetRow.id == dataset_id, DatasetRow.deleted_at.is_(None))
    ).first()


def find_export(session: Session, dataset_seq: int, archive_sha256: str) -> DatasetExportRow | None:
    """Return the export of one version of a dataset, if it was built."""
    return session.scalars(
        select(DatasetExportRow).where(
            DatasetExportRow.dataset_seq == dataset_seq,
            DatasetExportRow.archive_sha256 == archive_sha256,
        )
    ).first()


def all_keys(session: Session, dataset_seqs: list[int]) -> list[str]:
    """Return every blob key (images and manifests) of the exports of these datasets."""
    if not dataset_seqs:
        return []
    keys: set[str] = set()
    for manifest, blobs in session.execute(
        select(DatasetExportRow.manifest_key, DatasetExportRow.blob_keys).where(
            DatasetExportRow.dataset_seq.in_(dataset_seqs)
        )
    ):
        keys.add(manifest)
        keys.update(str(k) for k in blobs or [])
    return sorted(keys)


def keep_only(session: Session, dataset: DatasetRow, archive_sha256: str | None) -> list[str]:
    """Drop the exports of other versions of `dataset`; return the keys no export names now."""
    before = set(all_keys(session, [dataset.seq]))
    session.execute(
        delete(DatasetExportRow).where(
            DatasetExportRow.dataset_seq == dataset.seq,
            DatasetExportRow.archive_sha256 != (archive_sha256 or ""),
        )
    )
    return sorted(before - set(all_keys(session, [dataset.seq])))


def record_export(
    session: Session,
    dataset: DatasetRow,
    archive_sha256: str,
    manifest_key: str,
    blob_keys: list[str],
    images: int,
) -> list[str]:
    """Record a built export of the dataset's current version; return the keys now garbage."""
    if find_export(session, dataset.seq, archive_sha256) is None:
        session.add(
            DatasetExportRow(
                dataset_seq=dataset.seq,
                archive_sha256=archive_sha256,
                manifest_key=manifest_key,
                blob_keys=sorted(set(blob_keys)),
                images=images,
            )
        )
        session.flush()
    return keep_only(session, dataset, archive_sha256)
