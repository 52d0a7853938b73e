"""ArchiveError and the wording shared by refusals: quoting user text, damage, sizes."""

from trainhub.server.archives.limits import MIB


class ArchiveError(ValueError):
    """An archive the hub refuses; str(exc) is a user-facing message that says what to do."""


def special_file(filename: str, name: str) -> str:
    return (
        f"{quote(filename)} contains {quote(name)}, which is not a regular file or folder "
        "(a device, pipe or similar); remove it and upload again."
    )


def damaged(filename: str) -> str:
    return f"{quote(filename)}: the archive is damaged or truncated; upload it again."


def quote(text: str, limit: int = 80) -> str:
    """Quote user-supplied text for a message: control characters escaped, long text cut."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def format_size(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
