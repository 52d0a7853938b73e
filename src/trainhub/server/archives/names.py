"""Names: archive file names (suffixes) and member names (checks, normalisation, litter)."""

import re

from trainhub.server.archives.errors import ArchiveError, quote

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")

_MAX_NAME_CHARS = 1024
_DRIVE_LETTER = re.compile(r"[A-Za-z]:")


def is_archive_name(filename: str) -> bool:
    """Return whether `filename` is a plain file name with one of ARCHIVE_SUFFIXES."""
    if not filename or filename.startswith(".") or any(c in filename for c in "/\\\x00"):
        return False
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


def archive_stem(filename: str) -> str:
    lower = filename.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def check_name(name: str, filename: str) -> None:
    if "\x00" in name:
        problem = "contains a NUL character"
    elif not _is_unicode(name):
        # tarfile hands bytes that are not UTF-8 over as lone surrogates ("surrogateescape")
        name, problem = name.encode("utf-8", "replace").decode(), "is not UTF-8 text"
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
    raise ArchiveError(bad_name(filename, name, problem))


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_absolute_name(name: str) -> bool:
    """Tell whether `name` is absolute on some system: "/x", "\\x", "C:x" or "C:/x"."""
    return name.startswith(("/", "\\")) or bool(_DRIVE_LETTER.match(name))


def bad_name(filename: str, name: str, problem: str) -> str:
    return (
        f"{quote(filename)} contains a member named {quote(name)}, which {problem}; re-create "
        "the archive with relative, '/'-separated names (for example `zip -r coco8.zip coco8` "
        "from the folder that holds your dataset) and upload again."
    )


def normalise(name: str) -> str:
    """Drop "." and empty parts, as extraction does: "./coco8//a.jpg" -> "coco8/a.jpg"."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def is_ignored(name: str) -> bool:
    """Tell macOS Finder litter, which trainers skip and layouts must not depend on."""
    parts = name.split("/")
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store"
