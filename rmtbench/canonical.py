"""Canonical, machine-independent text for parameters: the basis of cell ids and labels."""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def canonical_value(value: Any) -> Any:
    """Normalise a config value so that equal parameters always serialise to the same text.

    Floats that are whole numbers stay floats (``1.0``), so ``d_over_n: 1`` and ``1.0`` agree only
    after the schema has typed them; mappings are sorted by key; tuples become lists.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite parameter value {value!r}")
        return float(repr(float(value)))
    if isinstance(value, dict):
        return {str(k): canonical_value(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [canonical_value(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return canonical_value(value.item())
    raise TypeError(f"cannot canonicalise parameter of type {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """Compact JSON of :func:`canonical_value` with sorted keys."""
    return json.dumps(canonical_value(value), sort_keys=True, separators=(",", ":"))


def short_hash(value: Any, *, length: int = 12) -> str:
    """A hex digest of the canonical JSON of ``value`` (the cell id scheme)."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def format_number(value: float | int) -> str:
    """Short readable number for labels: ``0.25``, ``1e-05``, ``512``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:g}"
