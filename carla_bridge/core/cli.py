"""What every command line shares: argparse value types, the help layout, and the strict JSON line a
tool prints last.

The types give every tool the same one-line ``argument --flag: ...`` error before any work.
The JSON line is strict, with no NaN or Infinity, which jq and JSON.parse reject: a metric that had
nothing to measure (the mean of no frames) is NaN, and Python's json would write the bare word NaN;
here it becomes null, "no value", which every reader accepts.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """Counts that may be 0 (--warmup), and seeds: numpy's generators and CARLA's Traffic Manager
    take non-negative seeds only."""
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """Budgets in seconds that may be 0 (spent at once); NaN, inf and negatives are refused (a NaN
    budget compared False and never ran out)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, got {text!r}")
    return text


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help with the description as written (its example commands keep their lines) and every
    option's default. Unlike argparse.ArgumentDefaultsHelpFormatter it leaves out defaults that say
    nothing (None, a flag's True or False) and those a help text already states."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or default is None or isinstance(default, bool)  # on/off flags say it
                or default is argparse.SUPPRESS or "default" in text):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"

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
