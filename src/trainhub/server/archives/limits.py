"""ArchiveLimits: how much one dataset archive may hold, set by the hub's operator."""

from dataclasses import dataclass

MIB = 1024**2


@dataclass(frozen=True)
class ArchiveLimits:
    """The most an archive may hold; ratios are only judged above small sizes."""

    max_members: int = 200_000
    max_total_bytes: int = 64 * 1024**3  # uncompressed total
    max_member_ratio: float = 200.0  # uncompressed/compressed per zip member (only when > 1 MiB)
    max_total_ratio: float = 200.0  # uncompressed total / archive file size (only when > 16 MiB)
