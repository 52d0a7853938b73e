"""Inspect uploaded dataset archives (zip, tar, tar.gz) without extracting them.

Hostile or unusable ones are refused with an ArchiveError whose message says what to fix.
"""

import contextlib
import gzip
import io
import logging
import lzma
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import NamedTuple, NoReturn

import yaml

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")

_MIB = 1024**2
_MAX_NAME_CHARS = 1024
_MAX_YAML_BYTES = _MIB
# Ratios of small data say nothing: a few KiB of blank label files compress a thousandfold.
_MEMBER_RATIO_FLOOR = _MIB
_TOTAL_RATIO_FLOOR = 16 * _MIB
# What a tar stream may hold beyond the declared file sizes: per entry a header block, padding
# and a typical pax record; once, the end-of-archive blocks and record padding.
_TAR_ENTRY_SLACK = 4 * 1024
_TAR_STREAM_SLACK = 4 * _MIB

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_LOCAL_MAGIC = b"PK\x03\x04"
_ZIP_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature ... name length, extra length
_ZIP_ENCRYPTED = 0x1
_ZIP_UTF8_NAMES = 0x800
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_DRIVE_LETTER = re.compile(r"[A-Za-z]:")
_VAL_SPLITS = ("val", "validation", "valid")
_KIND_LABELS = {"zip": "zip archive", "tar": "tar archive", "tar.gz": "gzip-compressed tar archive"}
_KIND_SUFFIXES = {"zip": ".zip", "tar": ".tar", "tar.gz": ".tar.gz"}
# What the zip, tar, gzip, bz2 and lzma readers raise on bytes that are not what they claim.
_DAMAGE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    struct.error,
    ValueError,
    OverflowError,
)


class ArchiveError(ValueError):
    """An archive the hub refuses; str(exc) is a user-facing message that says what to do."""


@dataclass(frozen=True)
class ArchiveLimits:
    """The most an archive may hold; ratios are only judged above small sizes."""

    max_members: int = 200_000
    max_total_bytes: int = 64 * 1024**3  # uncompressed total
    max_member_ratio: float = 200.0  # uncompressed/compressed per zip member (only when > 1 MiB)
    max_total_ratio: float = 200.0  # uncompressed total / archive file size (only when > 16 MiB)


@dataclass(frozen=True)
class ArchiveReport:
    """What inspection found in an accepted archive."""

    kind: str  # "zip" | "tar"
    members: int  # number of regular files
    total_bytes: int  # uncompressed bytes of regular files
    layout: str  # "detect" (YAML-described: detect/segment/pose/obb) | "classify"
    yaml_name: str | None  # member name of the dataset YAML for "detect" layout, else None
    root: str = ""  # the single top-level folder trainers extract into, "" for loose files


def is_archive_name(filename: str) -> bool:
    """Return whether `filename` is a plain file name with one of ARCHIVE_SUFFIXES."""
    if not filename or filename.startswith(".") or any(c in filename for c in "/\\\x00"):
        return False
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


def inspect_archive(
    path: Path, filename: str, limits: ArchiveLimits = ArchiveLimits()
) -> ArchiveReport:
    """Check the archive at `path` without extracting it; raise ArchiveError if it is refused.

    `filename` is the name the user gave the file: it sets the expected type and names the
    archive in messages.
    """
    archive_size = path.stat().st_size  # outside the try: a missing file is our bug, not theirs
    try:
        report = _inspect(path, filename, limits, archive_size)
    except ArchiveError as exc:
        logger.info("refused archive %r: %s", filename, exc)
        raise
    except _DAMAGE_ERRORS as exc:
        logger.info("refused damaged archive %r: %r", filename, exc)
        raise ArchiveError(_damaged(filename)) from exc
    logger.debug("accepted archive %r: %s", filename, report)
    return report


def _inspect(path: Path, filename: str, limits: ArchiveLimits, size: int) -> ArchiveReport:
    expected = _expected_kind(filename)
    actual = _sniff_kind(path, filename)
    if actual is None:
        raise ArchiveError(
            f"{_quote(filename)} is not a zip or tar archive; "
            "upload your dataset as a .zip, .tar or .tar.gz file."
        )
    if actual != expected:
        raise ArchiveError(
            f"{_quote(filename)} is named like a {_KIND_LABELS[expected]} but is a "
            f"{_KIND_LABELS[actual]}; rename it to end in {_KIND_SUFFIXES[actual]} and upload "
            "again."
        )
    catalog = _Catalog(filename, limits, size)
    if actual == "zip":
        return _inspect_zip(path, catalog)
    return _inspect_tar(path, catalog, gzipped=actual == "tar.gz")


# --- archive type ---


def _expected_kind(filename: str) -> str:
    lower = filename.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if lower.endswith(".tar"):
        return "tar"
    raise ArchiveError(
        f"{_quote(filename)} is not a supported archive name; "
        "upload a .zip, .tar, .tar.gz or .tgz file."
    )


def _sniff_kind(path: Path, filename: str) -> str | None:
    """Tell the real archive type from the content, in the order trainers try them."""
    with path.open("rb") as fh:
        head = fh.read(tarfile.BLOCKSIZE)
    looks_tar = _is_tar_header(head)
    if zipfile.is_zipfile(path):
        if looks_tar:
            # ultralytics tries zip first, so it would unpack only the zip hidden at the end
            raise ArchiveError(
                f"{_quote(filename)} reads as both a tar and a zip archive (probably a .zip file "
                "stored last in it); take nested .zip files out of the dataset and upload again."
            )
        return "zip"
    if head.startswith(_GZIP_MAGIC):
        with gzip.open(path, "rb") as unzipped:
            if not _is_tar_header(unzipped.read(tarfile.BLOCKSIZE)):
                raise ArchiveError(
                    f"{_quote(filename)} is gzip-compressed but holds no tar archive; "
                    "create it with `tar czf` and upload again."
                )
        return "tar.gz"
    if looks_tar:
        return "tar"
    if head.startswith(_ZIP_LOCAL_MAGIC):
        raise ArchiveError(_damaged(filename))  # a zip that lost its directory at the end
    return None


def _is_tar_header(block: bytes) -> bool:
    if block == bytes(tarfile.BLOCKSIZE):
        return True  # an empty tar is nothing but end-of-archive blocks
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


# --- names, totals and layout, common to zip and tar ---


class _Catalog:
    """The validated entries of one archive and their running totals."""

    def __init__(self, filename: str, limits: ArchiveLimits, archive_size: int) -> None:
        self.filename = filename
        self.limits = limits
        self.archive_size = archive_size
        self.files: dict[str, str] = {}  # normalised name -> name as stored in the archive
        self.dirs: set[str] = set()
        self.total_bytes = 0

    def add(self, raw_name: str, is_dir: bool, size: int) -> None:
        """Record one entry, refusing bad or duplicate names and archives over the limits."""
        _check_name(raw_name, self.filename)
        name = _normalise(raw_name)
        if not name and is_dir:
            return  # "./": the archive root itself
        if not name:
            raise ArchiveError(_bad_name(self.filename, raw_name, "names no file"))
        if name in self.files or name in self.dirs:
            raise ArchiveError(
                f"{_quote(self.filename)} contains {_quote(name)} more than once; "
                "remove the duplicate entries and upload again."
            )
        if is_dir:
            self.dirs.add(name)
        else:
            self.files[name] = raw_name
            self.total_bytes += size
        self._check_totals()

    def stream_allowance(self) -> int:
        """Return how far into the tar stream the entries seen so far can reach."""
        entries = len(self.files) + len(self.dirs)
        return self.total_bytes + entries * _TAR_ENTRY_SLACK + _TAR_STREAM_SLACK

    def finish(self) -> tuple[str, str | None]:
        """Check the whole listing; return the layout and the stored name of the dataset YAML."""
        if not self.files:
            raise ArchiveError(
                f"{_quote(self.filename)} contains no files; put your dataset (images, labels "
                "and dataset YAML) in it and upload again."
            )
        self._check_file_folder_clashes()
        layout, yaml_name = _find_layout(self.files.keys(), self.dirs, self.filename)
        return layout, None if yaml_name is None else self.files[yaml_name]

    def root(self) -> str:
        """Return the single top-level folder of the listing ("" when files lie loose)."""
        files = [name for name in self.files if not _is_ignored(name)]
        return _dataset_root(files, [name for name in self.dirs if not _is_ignored(name)])

    def _check_totals(self) -> None:
        limits, files = self.limits, len(self.files)
        # folders count too, with room to spare, so a flood of empty folders is bounded as well
        if files > limits.max_members or files + len(self.dirs) > 2 * limits.max_members:
            raise ArchiveError(
                f"{_quote(self.filename)} has more than {limits.max_members:,} files, the most "
                "this hub accepts in one dataset; reduce the dataset and upload again."
            )
        if self.total_bytes > limits.max_total_bytes:
            raise ArchiveError(
                f"{_quote(self.filename)} unpacks to more than "
                f"{_format_size(limits.max_total_bytes)}, the largest dataset this hub accepts; "
                "reduce the dataset and upload again."
            )
        ratio = self.total_bytes / max(self.archive_size, 1)
        if self.total_bytes > _TOTAL_RATIO_FLOOR and ratio > limits.max_total_ratio:
            raise ArchiveError(
                f"{_quote(self.filename)} would unpack to {_format_size(self.total_bytes)} from "
                f"{_format_size(self.archive_size)} ({ratio:.0f}x, limit "
                f"{limits.max_total_ratio:.0f}x), which looks like a decompression bomb; upload "
                "an ordinary archive of your dataset files."
            )

    def _check_file_folder_clashes(self) -> None:
        for name in self.files:
            folder = ""
            for part in name.split("/")[:-1]:
                folder = f"{folder}/{part}" if folder else part
                if folder in self.files:
                    raise ArchiveError(
                        f"{_quote(self.filename)} uses {_quote(folder)} both as a file and as a "
                        "folder; rename one of them and upload again."
                    )


def _check_name(name: str, filename: str) -> None:
    if "\x00" in name:
        problem = "contains a NUL character"
    elif not name:
        problem = "is empty"
    elif len(name) > _MAX_NAME_CHARS:
        problem = f"is longer than {_MAX_NAME_CHARS} characters"
    elif name.startswith(("/", "\\")):
        problem = "is an absolute path"
    elif _DRIVE_LETTER.match(name):
        problem = "starts with a drive letter"
    elif "\\" in name:
        problem = "uses backslashes as separators"
    elif ".." in name.split("/"):
        problem = "climbs out of the archive with '..'"
    else:
        return
    raise ArchiveError(_bad_name(filename, name, problem))


def _bad_name(filename: str, name: str, problem: str) -> str:
    return (
        f"{_quote(filename)} contains a member named {_quote(name)}, which {problem}; re-create "
        "the archive with relative, '/'-separated names (for example `zip -r coco8.zip coco8` "
        "from the folder that holds your dataset) and upload again."
    )


def _normalise(name: str) -> str:
    """Drop "." and empty parts, as extraction does: "./coco8//a.jpg" -> "coco8/a.jpg"."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def _is_ignored(name: str) -> bool:
    """Tell macOS Finder litter, which trainers skip and layouts must not depend on."""
    parts = name.split("/")
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store"


def _find_layout(
    files: Collection[str], dirs: Collection[str], filename: str
) -> tuple[str, str | None]:
    """Return ("detect", YAML name) or ("classify", None) the way ultralytics reads datasets."""
    visible_files = [name for name in files if not _is_ignored(name)]
    visible_dirs = [name for name in dirs if not _is_ignored(name)]
    root = _dataset_root(visible_files, visible_dirs)
    yaml_files = [name for name in visible_files if name.endswith((".yaml", ".yml"))]
    if yaml_files:
        return "detect", _pick_yaml(yaml_files, root, filename)
    if _has_split(visible_files, root, "train"):
        if any(_has_split(visible_files, root, split) for split in _VAL_SPLITS):
            return "classify", None
        raise ArchiveError(
            f"{_quote(filename)} has a train/ folder but no val/ folder; add val/ (or "
            "validation/) next to train/ with one sub-folder per class and upload again."
        )
    raise ArchiveError(
        f"{_quote(filename)} does not look like a dataset. Use either the YOLO layout (images/ "
        "and labels/ folders plus a dataset YAML with train:, val: and names:) or the "
        "classification layout (train/ and val/ folders with one sub-folder per class), "
        "then upload again."
    )


def _dataset_root(files: list[str], dirs: list[str]) -> str:
    """Return the single top-level folder, or "" when the files lie loose in the archive."""
    tops = {name.split("/", 1)[0] for name in [*files, *dirs]}
    if len(tops) == 1:
        (top,) = tops
        if top not in files:
            return top
    return ""


def _pick_yaml(yaml_files: list[str], root: str, filename: str) -> str:
    """Choose the dataset YAML as ultralytics' find_dataset_yaml will after unpacking."""
    candidates = [name for name in yaml_files if name.endswith(".yaml")]
    if not candidates:
        # find_dataset_yaml globs "*.yaml" only, so a lone .yml means "no YAML found" at training
        name = yaml_files[0]
        raise ArchiveError(
            f"{_quote(filename)} has a dataset YAML named {_quote(name)}, but trainers only look "
            f"for *.yaml files; rename it to {PurePosixPath(name).stem}.yaml and upload again."
        )
    depth = root.count("/") + 1 if root else 0
    at_top = [name for name in candidates if name.count("/") == depth]
    found = at_top or candidates
    if len(found) == 1:
        return found[0]
    stem = PurePosixPath(root or _archive_stem(filename)).stem
    chosen = [name for name in found if PurePosixPath(name).stem == stem]
    if len(chosen) != 1:
        listed = ", ".join(_quote(name) for name in found[:5])
        raise ArchiveError(
            f"{_quote(filename)} contains several dataset YAML files ({listed}) and none is "
            f"named after the dataset folder; keep only one, or name the right one "
            f"{stem}.yaml, and upload again."
        )
    return chosen[0]


def _has_split(files: list[str], root: str, split: str) -> bool:
    """Tell whether `root/split/` has a class folder holding at least one file."""
    prefix = f"{root}/{split}/" if root else f"{split}/"
    return any(name.startswith(prefix) and "/" in name[len(prefix) :] for name in files)


def _archive_stem(filename: str) -> str:
    lower = filename.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


# --- dataset YAML ---


def _check_yaml_size(size: int, yaml_name: str) -> None:
    if size > _MAX_YAML_BYTES:
        raise ArchiveError(
            f"{_quote(yaml_name)} is larger than 1 MiB, far too big for a dataset YAML; keep "
            "only train:, val:, test: and names: in it and upload again."
        )


def _check_dataset_yaml(text: bytes, yaml_name: str) -> None:
    """Refuse a dataset YAML that ultralytics' check_det_dataset or a resumed run would reject."""
    data = _load_yaml(text, yaml_name)
    if not isinstance(data, dict):
        raise ArchiveError(
            f"{_quote(yaml_name)} must be a YAML mapping with train:, val: and names: keys; "
            "fix it and upload again."
        )
    for key in ("train", "val"):
        if not data.get(key) and not (key == "val" and data.get("validation")):
            raise ArchiveError(
                f"{_quote(yaml_name)} has no '{key}:' entry; add train: and val: with the image "
                "folders (relative to the YAML file) and upload again."
            )
    _check_yaml_names(data, yaml_name)
    path = data.get("path")
    if path is not None and str(path).strip():
        # a relative path breaks resumed runs and final validation; an absolute one is the
        # uploader's own disk
        raise ArchiveError(
            f"{_quote(yaml_name)} sets path: {_quote(str(path))}, which trainers cannot use; "
            f"remove the 'path:' line from {yaml_name} and upload again."
        )


def _load_yaml(text: bytes, yaml_name: str) -> object:
    try:
        data: object = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise ArchiveError(
            f"{_quote(yaml_name)} is not valid YAML ({_describe_yaml_error(exc)}); fix it and "
            "upload again."
        ) from exc
    return data


def _describe_yaml_error(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and exc.problem_mark:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _check_yaml_names(data: dict[object, object], yaml_name: str) -> None:
    names, count = data.get("names"), data.get("nc")
    if names is None and count is None:
        raise ArchiveError(
            f"{_quote(yaml_name)} has no 'names:' entry; add names: with your class names (or "
            "nc: with the number of classes) and upload again."
        )
    if names is not None and not isinstance(names, list | dict):
        raise ArchiveError(
            f"'names:' in {_quote(yaml_name)} must be a list or a mapping of class names; "
            "fix it and upload again."
        )
    if isinstance(names, list | dict) and count is not None and len(names) != count:
        raise ArchiveError(
            f"'names:' in {_quote(yaml_name)} lists {len(names)} classes but 'nc:' says "
            f"{count!r}; make them agree (or drop nc:) and upload again."
        )


# --- zip ---


class _Span(NamedTuple):
    start: int
    end: int
    name_matches: bool


def _inspect_zip(path: Path, catalog: _Catalog) -> ArchiveReport:
    filename = catalog.filename
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_zip_member(info, filename, catalog.limits)
            name = info.orig_filename  # unlike .filename, not cut short at a NUL
            catalog.add(name, name.endswith("/"), info.file_size)
        _check_zip_spans(path, infos, zf.start_dir, filename)
        layout, yaml_name = catalog.finish()
        if yaml_name is not None:
            _check_dataset_yaml(_read_zip_member(zf, zf.getinfo(yaml_name)), yaml_name)
    return ArchiveReport(
        "zip", len(catalog.files), catalog.total_bytes, layout, yaml_name, catalog.root()
    )


def _check_zip_member(info: zipfile.ZipInfo, filename: str, limits: ArchiveLimits) -> None:
    name, file_type = info.orig_filename, stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise ArchiveError(
            f"{_quote(filename)} contains a symbolic link, {_quote(name)}; archive the files "
            "themselves (for example `zip -r` without -y) and upload again."
        )
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError(_special_file(filename, name))
    if info.flag_bits & _ZIP_ENCRYPTED:
        raise ArchiveError(
            f"{_quote(name)} in {_quote(filename)} is password-protected; re-create the archive "
            "without a password and upload again."
        )
    if info.compress_type not in _ZIP_METHODS:
        raise ArchiveError(
            f"{_quote(name)} in {_quote(filename)} uses a compression method trainers cannot "
            "unpack; re-create the archive with standard (deflate) compression and upload again."
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _MEMBER_RATIO_FLOOR and ratio > limits.max_member_ratio:
        raise ArchiveError(
            f"{_quote(name)} in {_quote(filename)} would expand {ratio:.0f}x when unpacked "
            f"(limit {limits.max_member_ratio:.0f}x), which looks like a zip bomb; remove that "
            "file and upload again."
        )


def _check_zip_spans(
    path: Path, infos: list[zipfile.ZipInfo], directory_start: int, filename: str
) -> None:
    """Refuse members whose bytes overlap: the "overlapping files" zip bomb (CVE-2024-0450)."""
    with path.open("rb") as fh:
        spans = sorted(_read_zip_span(fh, info, filename) for info in infos)
    fence = _Span(directory_start, directory_start, name_matches=True)
    for span, following in pairwise([*spans, fence]):
        if span.end > following.start:
            raise ArchiveError(
                f"{_quote(filename)} has members whose data overlap (a known zip-bomb trick); "
                "re-create the archive with a standard zip tool and upload again."
            )
    if not all(span.name_matches for span in spans):
        # extraction stops at such a member ("File name in directory and header differ")
        raise ArchiveError(_damaged(filename))


def _read_zip_span(fh: io.BufferedReader, info: zipfile.ZipInfo, filename: str) -> _Span:
    """Return the byte range of a member's local header and data, read from the local header."""
    fh.seek(info.header_offset)
    header = fh.read(_ZIP_LOCAL_HEADER.size)
    if len(header) != _ZIP_LOCAL_HEADER.size or not header.startswith(_ZIP_LOCAL_MAGIC):
        raise ArchiveError(_damaged(filename))
    name_length, extra_length = _ZIP_LOCAL_HEADER.unpack(header)[-2:]
    encoding = "utf-8" if info.flag_bits & _ZIP_UTF8_NAMES else "cp437"
    local_name = fh.read(name_length).decode(encoding)
    end = info.header_offset + _ZIP_LOCAL_HEADER.size + name_length + extra_length
    return _Span(info.header_offset, end + info.compress_size, local_name == info.orig_filename)


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    _check_yaml_size(info.file_size, info.orig_filename)
    with zf.open(info) as fh:
        return fh.read(_MAX_YAML_BYTES + 1)


# --- tar ---


class _GuardedStream:
    """A read-only view of a tar stream that refuses to go further than its entries explain.

    tarfile reads pax and GNU long-name headers into memory in one piece, and a gzip stream can
    hide gigabytes of them, or of trailing data, in a small upload.
    """

    def __init__(
        self, stream: io.BufferedIOBase, allowance: Callable[[], int], filename: str
    ) -> None:
        self._stream = stream
        self._allowance = allowance
        self._filename = filename
        self.last_read: tuple[int, bytes] = (-1, b"")  # (offset, data) of the latest read

    def read(self, size: int = -1, /) -> bytes:
        start = self._stream.tell()
        if size < 0:
            self._refuse()
        self._check_reach(start + size)
        data = self._stream.read(size)
        self.last_read = (start, data)
        return data

    def seek(self, pos: int, /) -> int:
        self._check_reach(pos)
        return self._stream.seek(pos)

    def tell(self) -> int:
        return self._stream.tell()

    def write(self, data: bytes, /) -> int:
        raise io.UnsupportedOperation("read-only stream")

    def close(self) -> None:
        """Leave closing to the owner of the underlying stream."""

    def drain(self) -> None:
        """Read to the end, so gzip verifies its checksum and length (a cut stream raises)."""
        while True:
            room = self._allowance() - self._stream.tell()
            chunk = self._stream.read(max(1, min(room, _MIB)))
            if not chunk:
                return
            if len(chunk) > room:
                self._refuse()

    def _check_reach(self, end: int) -> None:
        if end > self._allowance():
            self._refuse()

    def _refuse(self) -> NoReturn:
        raise ArchiveError(
            f"{_quote(self._filename)} holds more data than its files account for (oversized "
            "tar headers or hidden trailing data, a known decompression-bomb trick); re-create "
            "it with a standard tar tool and upload again."
        )


def _inspect_tar(path: Path, catalog: _Catalog, gzipped: bool) -> ArchiveReport:
    filename = catalog.filename
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(path.open("rb"))
        stream = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")) if gzipped else raw
        guard = _GuardedStream(stream, catalog.stream_allowance, filename)
        tf = stack.enter_context(tarfile.open(fileobj=guard, mode="r:"))
        for member in tf:  # streaming: each member is checked before its data is skipped
            _check_tar_member(member, filename)
            catalog.add(member.name, member.isdir(), member.size)
        _check_tar_end(tf.offset, guard, filename)
        if gzipped:
            guard.drain()
        layout, yaml_name = catalog.finish()
        if yaml_name is not None:
            member = tf.getmember(yaml_name)
            _check_dataset_yaml(_read_tar_member(tf, member, filename), yaml_name)
    return ArchiveReport(
        "tar", len(catalog.files), catalog.total_bytes, layout, yaml_name, catalog.root()
    )


def _check_tar_member(member: tarfile.TarInfo, filename: str) -> None:
    if member.isreg() or member.isdir():
        return
    if member.issym() or member.islnk():
        kind = "symbolic link" if member.issym() else "hard link"
        raise ArchiveError(
            f"{_quote(filename)} contains a {kind}, {_quote(member.name)}; archive the files "
            "themselves (for example `tar --dereference --hard-dereference`) and upload again."
        )
    raise ArchiveError(_special_file(filename, member.name))


def _check_tar_end(offset: int, guard: _GuardedStream, filename: str) -> None:
    """Require the end-of-archive block where iteration stopped.

    tarfile ends iteration quietly at a cut or garbled header; `tar xf` on the trainer does not.
    """
    if guard.last_read != (offset, bytes(tarfile.BLOCKSIZE)):
        raise ArchiveError(_damaged(filename))


def _read_tar_member(tf: tarfile.TarFile, member: tarfile.TarInfo, filename: str) -> bytes:
    _check_yaml_size(member.size, member.name)
    fh = tf.extractfile(member)
    if fh is None:  # only for non-regular members, which were refused already
        raise ArchiveError(_damaged(filename))
    with fh:
        return fh.read(_MAX_YAML_BYTES + 1)


# --- messages ---


def _special_file(filename: str, name: str) -> str:
    return (
        f"{_quote(filename)} contains {_quote(name)}, which is not a regular file or folder "
        "(a device, pipe or similar); remove it and upload again."
    )


def _damaged(filename: str) -> str:
    return f"{_quote(filename)}: the archive is damaged or truncated; upload it again."


def _quote(text: str, limit: int = 80) -> str:
    """Quote user-supplied text for a message: control characters escaped, long text cut."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _format_size(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", _MIB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
