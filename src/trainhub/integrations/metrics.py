"""Metric values as the hub takes them: a flat map of names to plain Python numbers.

Frameworks hand over tensors, numpy scalars, strings and None next to real numbers; a single
value the hub cannot read would make it refuse the whole epoch, so the integrations pass every
epoch through `numeric_metrics` before journaling it.
"""

from collections.abc import Mapping
from typing import Any


def numeric_metrics(values: Mapping[str, Any]) -> dict[str, float | int]:
    """Return the values that are numbers, as int or float (NaN and infinities are kept)."""
    out: dict[str, float | int] = {}
    for key, value in values.items():
        if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
            continue
        try:
            out[str(key)] = value if isinstance(value, int) else float(value)
        except (TypeError, ValueError):  # not a scalar (a list, a tensor of many values)
            continue
    return out
