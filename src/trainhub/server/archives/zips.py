"""Zip archives: member checks (links, encryption, methods, bombs) and overlapping data."""

import io
import stat
import struct
import zipfile
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

from trainhub.server.archives.catalog import ArchiveReport, Catalog
from trainhub.server.archives.errors import ArchiveError, damaged, quote, special_file
from trainhub.server.archives.limits import MIB, ArchiveLimits

ZIP_LOCAL_MAGIC = b"PK\x03\x04"

# Ratios of small data say nothing: a few KiB of blank label files compress a thousandfold.
_MEMBER_RATIO_FLOOR = MIB
_ZIP_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature ... name length, extra length
_ZIP_ENCRYPTED = 0x1
_ZIP_UTF8_NAMES = 0x800
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


class _Span(NamedTuple):
    start: int
    end: int
    name_matches: bool


def inspect_zip(path: Path, catalog: Catalog) -> ArchiveReport:
    filename = catalog.filename
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_zip_member(info, filename, catalog.limits)
            name = info.orig_filename  # unlike .filename, not cut short at a NUL
            catalog.add(name, name.endswith("/"), info.file_size)
        _check_zip_spans(path, infos, zf.start_dir, filename)
        return catalog.report("zip", lambda name: zf.open(zf.getinfo(name)))


def _check_zip_member(info: zipfile.ZipInfo, filename: str, limits: ArchiveLimits) -> None:
    name, file_type = info.orig_filename, stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise ArchiveError(
            f"{quote(filename)} contains a symbolic link, {quote(name)}; archive the files "
            "themselves (for example `zip -r` without -y) and upload again."
        )
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError(special_file(filename, name))
    if info.flag_bits & _ZIP_ENCRYPTED:
        raise ArchiveError(
            f"{quote(name)} in {quote(filename)} is password-protected; re-create the archive "
            "without a password and upload again."
        )
    if info.compress_type not in _ZIP_METHODS:
        raise ArchiveError(
            f"{quote(name)} in {quote(filename)} uses a compression method trainers cannot "
            "unpack; re-create the archive with standard (deflate) compression and upload again."
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _MEMBER_RATIO_FLOOR and ratio > limits.max_member_ratio:
        raise ArchiveError(
            f"{quote(name)} in {quote(filename)} would expand {ratio:.0f}x when unpacked "
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
                f"{quote(filename)} has members whose data overlap (a known zip-bomb trick); "
                "re-create the archive with a standard zip tool and upload again."
            )
    if not all(span.name_matches for span in spans):
        # extraction stops at such a member ("File name in directory and header differ")
        raise ArchiveError(damaged(filename))


def _read_zip_span(fh: io.BufferedReader, info: zipfile.ZipInfo, filename: str) -> _Span:
    """Return the byte range of a member's local header and data, read from the local header."""
    fh.seek(info.header_offset)
    header = fh.read(_ZIP_LOCAL_HEADER.size)
    if len(header) != _ZIP_LOCAL_HEADER.size or not header.startswith(ZIP_LOCAL_MAGIC):
        raise ArchiveError(damaged(filename))
    name_length, extra_length = _ZIP_LOCAL_HEADER.unpack(header)[-2:]
    encoding = "utf-8" if info.flag_bits & _ZIP_UTF8_NAMES else "cp437"
    local_name = fh.read(name_length).decode(encoding)
    end = info.header_offset + _ZIP_LOCAL_HEADER.size + name_length + extra_length
    return _Span(info.header_offset, end + info.compress_size, local_name == info.orig_filename)
