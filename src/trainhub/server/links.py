"""Download URLs of weights, checkpoints, dataset archives and cover images."""

from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from trainhub.protocol.exports import find_format
from trainhub.protocol.weights import WeightKind
from trainhub.server.db.tables import DatasetRow, ExportRow, ProjectRow, WeightRow
from trainhub.server.settings import Settings
from trainhub.server.signing import create_token, download_path, safe_name

COVER_LABEL = "cover"
EXPORT_LABEL_PREFIX = "export-"  # + the format: export-onnx
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def weight_file_name(model_id: str, weight: WeightRow) -> str:
    """Return the version-unique file name of a weights file (docs/protocol/hub-v1.md §10)."""
    if weight.kind == WeightKind.CHECKPOINT:
        return f"{model_id}-e{weight.epoch}-{weight.sha256[:8]}-last.pt"
    return f"{model_id}-{weight.sha256[:8]}-best.pt"


def export_label(format_name: str) -> str:
    """Return the download label of a model's export in a format (`export-onnx`)."""
    return f"{EXPORT_LABEL_PREFIX}{format_name}"


def export_file_name(model_id: str, export: ExportRow) -> str:
    """Return the version-unique file name of an exported model (a folder format is a zip)."""
    export_format = find_format(export.format)
    stem = f"{model_id}-{(export.sha256 or '')[:8]}-best"
    return export_format.file_name(stem) if export_format else f"{stem}.{export.format}"


def dataset_file_name(dataset: DatasetRow) -> str:
    """Return the version-unique file name of a dataset archive (docs/protocol/hub-v1.md §9)."""
    filename = dataset.filename or "dataset.zip"
    suffix = next((s for s in ARCHIVE_SUFFIXES if filename.lower().endswith(s)), ".zip")
    stem = safe_name(filename[: -len(suffix)])
    # ultralytics 8.3 extracts only "", .zip, .tar and .gz names, so a .tgz is served as .tar.gz
    served = ".tar.gz" if suffix == ".tgz" else suffix
    return f"{stem}-{(dataset.sha256 or '')[:8]}{served}"


def cover_file_name(project: ProjectRow) -> str:
    """Return the version-unique file name of a project's cover image."""
    suffix = {
        "image/png": ".png",
        "image/jpeg": ".jpg",
        "image/gif": ".gif",
        "image/webp": ".webp",
    }.get(project.cover_type or "", ".img")
    return f"{project.id}-{(project.cover_sha256 or '')[:8]}{suffix}"


@dataclass(frozen=True)
class Links:
    """Makes signed download URLs on this server's public URL, each for one reader.

    A link made for `reader` (a user id) works only while that user may read the object; the
    default reader None is anyone, so such a link works only while the object is public.
    """

    public_url: str
    secret: bytes
    ttl_s: int
    reader: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Links":
        return cls(
            settings.resolved_public_url(), settings.resolved_secret(), settings.download_ttl_s
        )

    def as_reader(self, reader: str | None) -> "Links":
        """Return links made for `reader` (a user id; None for an anonymous caller)."""
        return replace(self, reader=reader)

    def token(self, object_id: str, label: str, sha256: str) -> str:
        """Return a token that grants this reader one version of one file, for `ttl_s`."""
        return create_token(self.secret, object_id, label, sha256, self.ttl_s, self.reader)

    def download(self, object_id: str, label: str, sha256: str, name: str) -> str:
        """Return a signed URL for one version of a file."""
        token = self.token(object_id, label, sha256)
        return self.public_url + download_path(token, object_id, label, name)

    def weights(self, model_id: str, weight: WeightRow) -> str:
        """Return the URL of a model's best or last weights."""
        name = weight_file_name(model_id, weight)
        return self.download(model_id, WeightKind(weight.kind).filename, weight.sha256, name)

    def export(self, model_id: str, export: ExportRow) -> str | None:
        """Return the URL of an exported model, None until its file exists."""
        if not export.sha256 or not export.blob_key:
            return None
        name = export_file_name(model_id, export)
        return self.download(model_id, export_label(export.format), export.sha256, name)

    def dataset(self, dataset: DatasetRow) -> str | None:
        """Return the URL of a dataset's archive, None before one was uploaded."""
        if not dataset.sha256 or not dataset.filename:
            return None
        name = dataset_file_name(dataset)
        return self.download(dataset.id, PurePosixPath(dataset.filename).name, dataset.sha256, name)

    def cover(self, project: ProjectRow) -> str | None:
        """Return the URL of a project's cover image, None when it has none."""
        if not project.cover_sha256:
            return None
        return self.download(
            project.id, COVER_LABEL, project.cover_sha256, cover_file_name(project)
        )

    def model_page(self, model_id: str) -> str:
        """Return the dashboard URL of a model (the identifier clients accept)."""
        return f"{self.public_url}/models/{model_id}"
