"""The listing of one archive, zip or tar alike: names, totals and limits, and the report.

The zip and tar readers feed it entry by entry; it knows nothing of either format.
"""

from dataclasses import dataclass

from trainhub.server.archives.dataset_yaml import MemberOpener, check_dataset
from trainhub.server.archives.errors import ArchiveError, format_size, quote
from trainhub.server.archives.layout import dataset_root, find_layout
from trainhub.server.archives.limits import MIB, ArchiveLimits
from trainhub.server.archives.names import bad_name, check_name, is_ignored, normalise
from trainhub.server.archives.splits import Listing

# Ratios of small data say nothing: a few KiB of blank label files compress a thousandfold.
_TOTAL_RATIO_FLOOR = 16 * MIB
# What a tar stream may hold beyond the declared file sizes: per entry a header block, padding
# and a typical pax record; once, the end-of-archive blocks and record padding.
_TAR_ENTRY_SLACK = 4 * 1024
_TAR_STREAM_SLACK = 4 * MIB


@dataclass(frozen=True)
class ArchiveReport:
    """What inspection found in an accepted archive."""

    kind: str  # "zip" | "tar"
    members: int  # number of regular files
    total_bytes: int  # uncompressed bytes of regular files
    layout: str  # "detect" (YAML-described: detect/segment/pose/obb) | "classify"
    yaml_name: str | None  # member name of the dataset YAML for "detect" layout, else None
    root: str = ""  # the single top-level folder trainers extract into, "" for loose files


class Catalog:
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
        check_name(raw_name, self.filename)
        name = normalise(raw_name)
        if not name and is_dir:
            return  # "./": the archive root itself
        if not name:
            raise ArchiveError(bad_name(self.filename, raw_name, "names no file"))
        if name in self.files or name in self.dirs:
            raise ArchiveError(
                f"{quote(self.filename)} contains {quote(name)} more than once; "
                "remove the duplicate entries and upload again."
            )
        if is_dir:
            self.dirs.add(name)
        else:
            _check_not_a_label_cache(name, self.filename)
            self.files[name] = raw_name
            self.total_bytes += size
        self._check_totals()

    def stream_allowance(self) -> int:
        """Return how far into the tar stream the entries seen so far can reach."""
        entries = len(self.files) + len(self.dirs)
        return self.total_bytes + entries * _TAR_ENTRY_SLACK + _TAR_STREAM_SLACK

    def report(self, kind: str, open_member: MemberOpener) -> ArchiveReport:
        """Check the whole listing, the dataset YAML and the image lists it names; report.

        `open_member` opens a member by its name as stored in the archive.
        """
        layout, yaml_name = self.finish()
        if yaml_name is not None:
            check_dataset(yaml_name, self.listing(), lambda name: open_member(self.files[name]))
        stored_yaml_name = None if yaml_name is None else self.files[yaml_name]
        return ArchiveReport(
            kind, len(self.files), self.total_bytes, layout, stored_yaml_name, self.root()
        )

    def finish(self) -> tuple[str, str | None]:
        """Check the whole listing; return the layout and the normalised name of the YAML."""
        if not self.files:
            raise ArchiveError(
                f"{quote(self.filename)} contains no files; put your dataset (images, labels "
                "and dataset YAML) in it and upload again."
            )
        self._check_file_folder_clashes()
        return find_layout(self.files.keys(), self.dirs, self.filename)

    def listing(self) -> Listing:
        """Return the names trainers see once the archive is unpacked (no Finder litter)."""
        files = {name for name in self.files if not is_ignored(name)}
        return Listing(files, {name for name in self.dirs if not is_ignored(name)}, self.root())

    def root(self) -> str:
        """Return the single top-level folder of the listing ("" when files lie loose)."""
        files = [name for name in self.files if not is_ignored(name)]
        return dataset_root(files, [name for name in self.dirs if not is_ignored(name)])

    def _check_totals(self) -> None:
        limits, files = self.limits, len(self.files)
        # folders count too, with room to spare, so a flood of empty folders is bounded as well
        if files > limits.max_members or files + len(self.dirs) > 2 * limits.max_members:
            raise ArchiveError(
                f"{quote(self.filename)} has more than {limits.max_members:,} files, the most "
                "this hub accepts in one dataset; reduce the dataset and upload again."
            )
        if self.total_bytes > limits.max_total_bytes:
            raise ArchiveError(
                f"{quote(self.filename)} unpacks to more than "
                f"{format_size(limits.max_total_bytes)}, the largest dataset this hub accepts; "
                "reduce the dataset and upload again."
            )
        ratio = self.total_bytes / max(self.archive_size, 1)
        if self.total_bytes > _TOTAL_RATIO_FLOOR and ratio > limits.max_total_ratio:
            raise ArchiveError(
                f"{quote(self.filename)} would unpack to {format_size(self.total_bytes)} from "
                f"{format_size(self.archive_size)} ({ratio:.0f}x, limit "
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
                        f"{quote(self.filename)} uses {quote(folder)} both as a file and as a "
                        "folder; rename one of them and upload again."
                    )


def _check_not_a_label_cache(name: str, filename: str) -> None:
    """Refuse ultralytics' `*.cache` files: trainers unpickle them, which runs code."""
    if name.lower().endswith(".cache") and not is_ignored(name):
        raise ArchiveError(
            f"{quote(filename)} contains {quote(name)}, an ultralytics label cache; trainers "
            "load these with pickle, which can run code on their machines. Delete the .cache "
            "files (ultralytics rebuilds them) and upload again."
        )
