"""Weights uploads: one concept with four spellings on the wire, and the fields of an upload.

A model holds two kinds of weights: the newest epoch checkpoint, to resume from, and the final
weights. The stock clients name them differently in each place (docs/protocol/hub-v1.md §5.10,
§10): the form field `type` says "epoch" or "final", the file part is "last.pt" or "best.pt", the
record says `has_last_weights`/`has_best_weights`. `WeightKind` holds the mapping, so nothing else
spells it out.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from trainhub.protocol.metrics import MAX_EPOCH

_EPOCH = re.compile(r"[0-9]{1,7}")  # ASCII only: str.isdigit() also takes "²" and "٣"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class WeightKind(StrEnum):
    """The two kinds of weights a model holds; the value is how the hub stores the kind."""

    CHECKPOINT = "last"  # the newest epoch checkpoint, to resume training from
    FINAL = "best"  # the final (best) weights of a finished run

    @property
    def upload_type(self) -> str:
        """Return the `type` form field of an upload of this kind: "epoch" or "final"."""
        return "epoch" if self is WeightKind.CHECKPOINT else "final"

    @property
    def filename(self) -> str:
        """Return the file part's name and the download label: "last.pt" or "best.pt"."""
        return f"{self.value}.pt"

    @classmethod
    def from_upload_type(cls, text: str) -> "WeightKind | None":
        """Return the kind a `type` form field names, None for anything else."""
        return next((kind for kind in cls if kind.upload_type == text), None)

    @classmethod
    def from_filename(cls, name: str) -> "WeightKind | None":
        """Return the kind a file part or download label names, None for anything else."""
        return next((kind for kind in cls if kind.filename == name), None)


def _flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class WeightUpload:
    """What an upload says about its file: its kind, epoch, flags and the sha256 it claims."""

    kind: WeightKind
    epoch: int
    is_best: bool = False
    map_value: float | None = None
    sha256: str | None = None

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> "WeightUpload":
        """Read an upload's form fields (`type`, `epoch`, `isBest`, `map`, `sha256`).

        ValueError says which field is wrong and how to spell it.
        """
        kind = WeightKind.from_upload_type(fields.get("type", ""))
        if kind is None:
            raise ValueError("field 'type' must be 'epoch' (a checkpoint) or 'final' (the weights)")
        epoch = fields.get("epoch", "").strip()
        if not _EPOCH.fullmatch(epoch) or int(epoch) > MAX_EPOCH:
            raise ValueError(
                f"field 'epoch' must be a whole number from 0 to {MAX_EPOCH} (the 0-based epoch)"
            )
        map_value: float | None = None
        if fields.get("map", "").strip():
            try:
                map_value = float(fields["map"])
            except ValueError as exc:
                raise ValueError("field 'map' must be a number") from exc
            map_value = map_value if math.isfinite(map_value) else None
        claimed = fields.get("sha256", "").strip().lower() or None
        if claimed is not None and not _SHA256.fullmatch(claimed):
            raise ValueError("field 'sha256' must be 64 hex digits (the file's SHA-256)")
        return cls(kind, int(epoch), _flag(fields.get("isBest")), map_value, claimed)

    def fields(self) -> dict[str, str]:
        """Return the form fields, spelled as the stock clients spell them."""
        fields = {"epoch": str(self.epoch), "type": self.kind.upload_type}
        if self.kind is WeightKind.FINAL:
            fields["map"] = str(float(self.map_value or 0.0))
        else:
            fields["isBest"] = str(self.is_best)
        if self.sha256 is not None:
            fields["sha256"] = self.sha256
        return fields


class StoredWeights(BaseModel):
    """What the hub stored for a weights upload; `sha256` is the hash it computed."""

    kind: WeightKind
    epoch: int
    sha256: str
    size_bytes: int
