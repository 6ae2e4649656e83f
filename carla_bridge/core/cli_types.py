"""argparse value types and help layout shared by every command line (launch.py, carla_bridge and
neural_render tools). Standard library only, like writable.py and figure_output.py beside it: the
command lines of carla_bridge (procedural, standin) import these leaves of neural_render, so that no
part of neural_render has to import carla_bridge for its plumbing (its model, export and runtime parts
must not, DESIGN.md).

A QA pass found the tools disagreeing: launch.py rejected `--seed -1` and `--device tpu` naming the flag,
while `carla_bridge.procedural --seed -3` died in a numpy traceback after building the town and
`game.bench.generator --device tpu` ran on the CPU. One set of types gives them all the same one-line
`argument --flag: ...` error before any work.
"""

from __future__ import annotations

import argparse
import re


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
    option's default: a QA pass found bench, evaluate, train and perf_suite hiding most of theirs
    (--res, --frames, --warmup, --steps). Unlike argparse.ArgumentDefaultsHelpFormatter it leaves out
    defaults that say nothing (None, a flag's True or False) and those a help text already states."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or default is None or isinstance(default, bool)  # on/off flags say it
                or default is argparse.SUPPRESS or "default" in text):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"
