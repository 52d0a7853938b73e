"""Split paths of a dataset YAML and the image lists they name: they must stay in the archive.

ultralytics joins each split path (train:, val:, ...) to the YAML's folder on the trainer's disk
and reads a split that names a file as a list of images, one per line, where "./" means the list
file's folder. A path that is absolute or climbs out with '..' reaches whatever lies on the
trainer's disk, so each one is resolved here against the archive's member names.
"""

from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import IO

from trainhub.server.archives.errors import ArchiveError, quote
from trainhub.server.archives.names import is_absolute_name

SPLIT_KEYS = ("train", "val", "validation", "test", "minival")
MAX_LIST_LINE_BYTES = 4096


class Listing:
    """The member names of one archive: its files, its folders and its single top folder."""

    def __init__(self, files: set[str], dirs: set[str], root: str) -> None:
        self.files = files
        self.folders = set(dirs)
        for name in files:
            parts = name.split("/")[:-1]
            self.folders.update("/".join(parts[: end + 1]) for end in range(len(parts)))
        self.root = root

    def is_inside_root(self, name: str) -> bool:
        """Tell whether `name` lies in the dataset's top folder (anywhere, for loose files)."""
        return not self.root or name == self.root or name.startswith(self.root + "/")

    def names_something(self, name: str) -> bool:
        """Tell whether `name` is a file, or a folder in the dataset (for loose files: "" too)."""
        if name in self.files:
            return True
        return (name in self.folders or name == "") and self.is_inside_root(name)


def resolve(folder: str, relative: str) -> str | None:
    """Join `relative` to `folder` as a file system would; None when it climbs above the archive."""
    parts = folder.split("/") if folder else []
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def folder_of(name: str) -> str:
    """Return the folder of the member `name` ("" at the top of the archive)."""
    parent = str(PurePosixPath(name).parent)
    return "" if parent == "." else parent


def check_splits(data: dict[object, object], yaml_name: str, listing: Listing) -> list[str]:
    """Refuse split paths that leave the archive or name nothing in it; return the list files."""
    folder = folder_of(yaml_name)
    list_files: list[str] = []
    for key in SPLIT_KEYS:
        value = data.get(key)
        if not value:
            continue  # ultralytics skips empty splits (`test:` with nothing after it)
        paths = value if isinstance(value, list) else [value]
        strings = [path for path in paths if isinstance(path, str) and path]
        if len(strings) != len(paths):
            raise ArchiveError(
                f"'{key}:' in {quote(yaml_name)} must be a folder or list-file path, or a list "
                "of them, relative to the YAML file; fix it and upload again."
            )
        for path in strings:
            target = _resolve_split(key, path, folder, yaml_name, listing)
            if target in listing.files and target not in list_files:
                list_files.append(target)
    return list_files


def _resolve_split(key: str, path: str, folder: str, yaml_name: str, listing: Listing) -> str:
    where = f"{quote(f'{key}: {path}')} in {quote(yaml_name)}"
    if is_absolute_name(path) or "\\" in path:
        raise ArchiveError(
            f"{where} is not a path relative to the YAML file, so trainers would read it from "
            f"their own disk; write it relative to the YAML file with '/' separators (for "
            f"example {key}: images/{key}) and upload again."
        )
    target = resolve(folder, path)
    hint = _hint(key, path, folder, listing)
    if target is None or not listing.is_inside_root(target):
        leaves = "the archive" if target is None else f"the dataset folder {quote(listing.root)}"
        raise ArchiveError(
            f"{where} climbs out of {leaves} with '..'{hint}; write it relative to the YAML file "
            f"(for example {key}: images/{key}) and upload again."
        )
    if listing.names_something(target):
        return target
    raise ArchiveError(
        f"{where} names no folder or file in the archive{hint}; split paths are relative to the "
        "YAML file's folder. Fix the path (or remove the line) and upload again."
    )


def _hint(key: str, path: str, folder: str, listing: Listing) -> str:
    """Suggest the path without a leading '../' (as Roboflow exports write them) if it exists."""
    if not path.startswith("../"):
        return ""
    shorter = resolve(folder, path[3:])
    if shorter is None or not listing.names_something(shorter):
        return ""
    return f" (did you mean {quote(f'{key}: {path[3:]}')}?)"


def check_list_file(fh: IO[bytes], list_name: str, listing: Listing) -> None:
    """Refuse an image list with a line that is not './'-relative or that leaves the dataset."""
    folder = folder_of(list_name)
    for number, line in _lines(fh, list_name):
        if not line.strip():
            continue
        where = f"line {number} of {quote(list_name)} ({quote(line)})"
        if not line.startswith("./") or "\\" in line:
            raise ArchiveError(
                f"{where} is not a './'-relative path, so trainers would read it from their own "
                "disk; write each image as ./images/... relative to the list file and upload "
                "again."
            )
        target = resolve(folder, line[2:])
        if target is None or not listing.is_inside_root(target):
            raise ArchiveError(
                f"{where} climbs out of the dataset with '..'; list only images inside the "
                "archive, as ./images/... relative to the list file, and upload again."
            )


def _lines(fh: IO[bytes], list_name: str) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) as ultralytics splits the list: UTF-8, str.splitlines()."""
    number = 0
    while chunk := fh.readline(MAX_LIST_LINE_BYTES + 1):
        if len(chunk.rstrip(b"\r\n")) > MAX_LIST_LINE_BYTES:
            raise ArchiveError(
                f"{quote(list_name)} has a line longer than {MAX_LIST_LINE_BYTES} bytes; a split "
                "list holds one image path per line. Fix it and upload again."
            )
        try:  # "\n" never occurs inside a UTF-8 sequence, so lines decode one by one
            text = chunk.decode("utf-8-sig" if number == 0 else "utf-8")
        except UnicodeDecodeError as exc:
            raise ArchiveError(
                f"{quote(list_name)} is named by a split of the dataset YAML but is not UTF-8 "
                "text; a split names a folder of images or a text file listing them. Fix it and "
                "upload again."
            ) from exc
        for line in text.splitlines():
            number += 1
            yield number, line
