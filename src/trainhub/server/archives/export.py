"""A stored dataset archive as the records of an NDJSON export (docs/protocol/platform.md §9.10).

The archive was inspected when it was uploaded, so its names are safe and its layout known. This
reads it once more, in archive order (a .tar.gz is decompressed twice, never once per member),
and tells for each image its split, its labels and its size, handing its bytes to a `store`
callback; nothing is extracted to a path. Images and labels are paired the way ultralytics pairs
them: `.../images/x/a.png` is labelled by `.../labels/x/a.txt`.
"""

import struct
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any

import yaml

from trainhub.server.archives.layout import dataset_root, find_layout
from trainhub.server.archives.names import is_ignored, normalise
from trainhub.server.archives.splits import folder_of, resolve

IMAGE_SUFFIXES = frozenset(
    ("bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic")
)
SPLITS = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}
LABEL_KEYS = {"detect": "boxes", "segment": "segments", "pose": "pose"}
MAX_LABEL_BYTES = 1024**2  # one image's label file
MAX_LIST_BYTES = 64 * 1024**2
HEAD_BYTES = 64 * 1024  # enough of an image to read its size
# What `store` returns for one image: its label in storage and the first bytes of the file.
Store = Callable[[str, IO[bytes]], tuple[str, bytes]]
# {"boxes": [[class, cx, cy, w, h], ...]} (segments, pose alike) or {"classification": [class]}
Annotations = dict[str, list[Any]]


@dataclass
class ImageRecord:
    """One image of the export: where it goes, its labels, its size and its stored file."""

    file: str
    split: str
    stored: str
    annotations: "Annotations"
    width: int | None = None
    height: int | None = None


@dataclass
class Manifest:
    """Everything an NDJSON export says except its (signed, short-lived) image URLs."""

    task: str
    class_names: dict[int, str]
    extra: dict[str, Any] = field(default_factory=dict)
    images: list[ImageRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "class_names": {str(k): v for k, v in self.class_names.items()},
            "extra": self.extra,
            "images": [vars(image) for image in self.images],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        names = {int(k): str(v) for k, v in data["class_names"].items()}
        images = [ImageRecord(**image) for image in data["images"]]
        return cls(data["task"], names, dict(data.get("extra") or {}), images)


class ArchiveFiles(AbstractContextManager["ArchiveFiles"]):
    """The regular files of a zip or tar archive, by normalised name, read in archive order."""

    def __init__(self, path: Path) -> None:
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        if zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            entries = [(normalise(i.orig_filename), i) for i in self._zip.infolist()]
            self._zip_files = {n: i for n, i in entries if n and not i.is_dir()}
            self.names = [n for n in self._zip_files if not is_ignored(n)]
        else:
            self._tar = tarfile.open(path, mode="r:*")  # noqa: SIM115  (closed by __exit__)
            members = [(normalise(m.name), m) for m in self._tar.getmembers() if m.isfile()]
            self._tar_files = {n: m for n, m in members if n}
            self.names = [n for n in self._tar_files if not is_ignored(n)]
        self.folders = sorted({folder_of(n) for n in self.names} - {""})

    def each(self, wanted: set[str]) -> Iterator[tuple[str, IO[bytes]]]:
        """Yield (name, open file) for the wanted members, in archive order."""
        for name in self.names:
            if name not in wanted:
                continue
            if self._zip is not None:
                with self._zip.open(self._zip_files[name]) as fh:
                    yield name, fh
            elif self._tar is not None:
                member = self._tar.extractfile(self._tar_files[name])
                if member is not None:
                    with member:
                        yield name, member

    def read(self, wanted: set[str], limit: int) -> dict[str, bytes]:
        """Return the first `limit` bytes of each wanted member."""
        return {name: fh.read(limit) for name, fh in self.each(wanted)}

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for archive in (self._zip, self._tar):
            if archive is not None:
                archive.close()


def image_size(head: bytes) -> tuple[int, int] | None:
    """Return (width, height) from the first bytes of a PNG, GIF or JPEG file, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return width, height
    if head.startswith(b"\xff\xd8"):
        at = 2
        while at + 9 <= len(head) and head[at] == 0xFF:
            marker, length = head[at + 1], struct.unpack(">H", head[at + 2 : at + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", head[at + 5 : at + 9])
                return width, height
            at += 2 + length
    return None


def is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower().lstrip(".") in IMAGE_SUFFIXES


def label_of(image: str) -> str:
    """Return the label file ultralytics reads for `image` (`/images/` -> `/labels/`, `.txt`)."""
    path = "/" + image
    head, sep, tail = path.rpartition("/images/")
    swapped = f"{head}/labels/{tail}" if sep else path
    return swapped.rsplit(".", 1)[0].lstrip("/") + ".txt"


def parse_labels(text: bytes) -> list[list[float | int]]:
    """Return label lines as [class, numbers...]; lines that are not numbers are left out."""
    rows: list[list[float | int]] = []
    for line in text.decode("utf-8", "replace").splitlines():
        parts = line.split()
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            continue
        if len(numbers) >= 5:
            rows.append([int(numbers[0]), *numbers[1:]])
    return rows


def _names(data: dict[Any, Any]) -> dict[int, str]:
    names = data.get("names")
    if isinstance(names, list):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items() if str(k).isdigit()}
    count = data.get("nc")
    return {i: f"class{i}" for i in range(count)} if isinstance(count, int) else {}


def _split_images(
    files: ArchiveFiles, data: dict[Any, Any], yaml_name: str
) -> list[tuple[str, str]]:
    """Return (split, image name) for every image the YAML's splits name, in archive order."""
    folder, found = folder_of(yaml_name), []
    names = set(files.names)
    for key, split in SPLITS.items():
        value = data.get(key)
        for path in value if isinstance(value, list) else [value]:
            target = resolve(folder, path) if isinstance(path, str) and path else None
            if target is None:
                continue
            if target in names:  # a list file: ./-relative image paths, one a line
                listed = files.read({target}, MAX_LIST_BYTES).get(target, b"")
                base = folder_of(target)
                wanted = {
                    resolve(base, line.strip()[2:])
                    for line in listed.decode("utf-8-sig", "replace").splitlines()
                    if line.strip().startswith("./")
                }
                found += [(split, n) for n in files.names if n in wanted and is_image(n)]
            else:
                prefix = target + "/" if target else ""
                found += [(split, n) for n in files.names if n.startswith(prefix) and is_image(n)]
    return found


def _classify(files: ArchiveFiles, root: str) -> tuple[dict[int, str], list[tuple[str, str, int]]]:
    """Return class names and (split, image, class index) of a classification layout."""
    base = root + "/" if root else ""
    by_split: list[tuple[str, str, str]] = []
    for name in files.names:
        parts = name[len(base) :].split("/") if name.startswith(base) else []
        if len(parts) >= 3 and parts[0] in SPLITS and is_image(name):
            by_split.append((SPLITS[parts[0]], name, parts[1]))
    classes = sorted(
        {c for split, _, c in by_split if split == "train"} or {c for *_, c in by_split}
    )
    index = {c: i for i, c in enumerate(classes)}
    return dict(enumerate(classes)), [(s, n, index[c]) for s, n, c in by_split if c in index]


def build_manifest(path: Path, filename: str, store: Store) -> Manifest:
    """Read the archive at `path` (named `filename` by its owner) into an export manifest."""
    with ArchiveFiles(path) as files:
        layout, yaml_name = find_layout(files.names, files.folders, filename)
        if layout == "classify":
            names, entries = _classify(files, dataset_root(files.names, files.folders))
            labelled: list[tuple[str, str, Annotations]] = [
                (s, n, {"classification": [c]}) for s, n, c in entries
            ]
            manifest = Manifest("classify", names)
        elif yaml_name is None:
            raise ValueError(f"{filename} has the YOLO layout but no dataset YAML")
        else:
            raw = files.read({yaml_name}, MAX_LABEL_BYTES)[yaml_name]
            data = yaml.safe_load(raw) or {}
            images = _split_images(files, data, yaml_name)
            label_names = {label_of(n) for _, n in images} & set(files.names)
            labels = {
                k: parse_labels(v) for k, v in files.read(label_names, MAX_LABEL_BYTES).items()
            }
            task = "pose" if data.get("kpt_shape") else "detect"
            if task == "detect" and any(len(r) > 5 for rows in labels.values() for r in rows):
                task = "segment"
            key = LABEL_KEYS[task]
            labelled = [(s, n, {key: labels.get(label_of(n), [])}) for s, n in images]
            extra = {k: data[k] for k in ("kpt_shape", "flip_idx") if k in data}
            manifest = Manifest(task, _names(data), extra)
        where: dict[str, list[tuple[str, Annotations]]] = {}
        for split, name, annotations in labelled:
            where.setdefault(name, []).append((split, annotations))
        for name, fh in files.each(set(where)):
            stored, head = store(name, fh)
            size = image_size(head)
            for split, annotations in where[name]:
                manifest.images.append(
                    ImageRecord(
                        file=PurePosixPath(name).name,
                        split=split,
                        stored=stored,
                        annotations=annotations,
                        width=size[0] if size else None,
                        height=size[1] if size else None,
                    )
                )
    return manifest
