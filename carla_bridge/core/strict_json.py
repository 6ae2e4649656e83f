"""The JSON line a tool prints last, strict: no NaN or Infinity, which jq and JSON.parse reject.

Python's json writes float("nan") as the bare word NaN. A metric that had nothing to measure is NaN
(``metrics.mean`` of no frames: a quarter of a drive shorter than 8 frames, a warping-error ratio
without frame-by-frame errors); in the JSON it becomes null, "no value", which every reader accepts.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or infinite float inside it (dicts, lists, tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value


def json_line(value: Any) -> str:
    """One line of strict JSON (non-finite numbers as null)."""
    return json.dumps(finite_or_null(value), allow_nan=False)
