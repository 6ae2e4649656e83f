"""Several generator paths measured in one run (`python -m game.bench generator --backend a,b --res
WxH,WxH --repeats N`): the paths take turns, round after round, so that a shared, noisy machine's load
falls on all of them alike; each path's row is the median of its rounds, and the first backend is the
baseline every other one's speed is given against, at each size."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def round_robin(paths: Sequence[tuple[str, str]], repeats: int,
                measure: Callable[[str, str], dict]) -> list[dict]:
    """One row per (res, backend) path: ``measure(res, backend)`` called ``repeats`` times per path, in
    turns, folded by median_row."""
    runs: dict[tuple[str, str], list[dict]] = {path: [] for path in paths}
    for _ in range(repeats):
        for res, backend in paths:
            runs[(res, backend)].append(measure(res, backend))
    return [median_row(runs[path]) for path in paths]


def median_row(runs: list[dict]) -> dict:
    """The first run's row with fps and the latency figures replaced by their medians over ``runs``, and
    every run's p50 kept, so that the spread between rounds is in the JSON."""
    row = dict(runs[0])
    for key in ("fps", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms"):
        row[key] = round(float(np.median([run[key] for run in runs])), 3)
    row["rounds"] = len(runs)
    row["p50_ms_rounds"] = [run["p50_ms"] for run in runs]
    return row


def speedups(rows: list[dict]) -> dict[str, dict[str, float]]:
    """{res: {backend: its median p50 against the first backend's (above 1: faster)}}."""
    out: dict[str, dict[str, float]] = {}
    for res in dict.fromkeys(row["res"] for row in rows):
        at = [row for row in rows if row["res"] == res]
        base = at[0]["p50_ms"]
        out[res] = {row["backend"]: round(base / row["p50_ms"], 3) for row in at}
    return out


def speedup_lines(rows: list[dict]) -> list[str]:
    """One line per size and non-baseline backend, naming the faster of the two, e.g. 'at 256x128:
    openvino runs 1.40x as fast as onnxruntime (median p50 16.5 against 23.1 ms, 5 rounds)'."""
    lines = []
    for res in dict.fromkeys(row["res"] for row in rows):
        base, *others = [row for row in rows if row["res"] == res]
        for row in others:
            fast, slow = sorted((base, row), key=lambda r: r["p50_ms"])
            lines.append(f"at {res}: {fast['backend']} runs {slow['p50_ms'] / fast['p50_ms']:.2f}x as fast as "
                         f"{slow['backend']} (median p50 {fast['p50_ms']:.1f} against {slow['p50_ms']:.1f} ms, "
                         f"{row['rounds']} rounds)")
    return lines
