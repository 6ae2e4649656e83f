"""Summary statistics for latency samples: the one percentile definition the profiler uses.

Percentiles use linear interpolation between closest ranks, numpy's default ("linear", type 7 of
Hyndman & Fan, "Sample Quantiles in Statistical Packages", The American Statistician 50(4), 1996):
for n sorted samples x_0..x_{n-1}, the p-th percentile sits at rank r = p/100 * (n - 1) and is
x_floor(r) + (r - floor(r)) * (x_floor(r)+1 - x_floor(r)). So p50 of [1, 2, 3, 4] is 2.5 and p90 of
1..100 is 90.1. Every table, report and live HUD figure goes through `percentile` / `summarize` below.
The standard deviation is the sample one (ddof=1, Bessel's correction); a single sample has stdev 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

PERCENTILE_METHOD = (
    "linear interpolation between closest ranks: rank = p/100*(n-1) "
    "(numpy.percentile method='linear', Hyndman & Fan type 7)"
)
STDEV_METHOD = "sample standard deviation (ddof=1); 0 for one sample"
SUMMARY_KEYS = ("count", "mean", "stdev", "min", "p50", "p90", "p95", "p99", "max")
PERCENTILES = (50, 90, 95, 99)


def percentile(values: Sequence[float] | np.ndarray, q: float | Sequence[float]) -> float | np.ndarray:
    """The q-th percentile(s) (0..100) of values by linear interpolation (see module docstring)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("percentile needs at least one sample, got an empty sequence")
    q_array = np.asarray(q, dtype=np.float64)
    if np.any((q_array < 0) | (q_array > 100)):
        raise ValueError(f"percentile q must lie in 0..100, got {q!r}")
    result = np.percentile(array, q_array, method="linear")
    return float(result) if np.ndim(result) == 0 else result


def summarize(values_ms: Iterable[float]) -> dict[str, float | int]:
    """count, mean, stdev, min, p50, p90, p95, p99, max of samples in milliseconds.

    An empty input gives count 0 and NaN-free None fields so the JSON stays valid.
    """
    if isinstance(values_ms, np.ndarray):  # the report's per-frame columns: no copy through Python floats
        array = values_ms.astype(np.float64, copy=False)
    else:
        array = np.fromiter(values_ms, dtype=np.float64)
    if array.size == 0:
        return {key: (0 if key == "count" else None) for key in SUMMARY_KEYS}
    p50, p90, p95, p99 = percentile(array, PERCENTILES)
    stdev = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {
        "count": int(array.size),
        "mean": _round(array.mean()),
        "stdev": _round(stdev),
        "min": _round(array.min()),
        "p50": _round(p50),
        "p90": _round(p90),
        "p95": _round(p95),
        "p99": _round(p99),
        "max": _round(array.max()),
    }


def _round(value: float) -> float:
    """Keep microsecond-and-below detail (ms with 6 decimals = ns) without float noise in the JSON."""
    value = float(value)
    return round(value, 6) if math.isfinite(value) else value
