"""What every measuring tool shares: the warm-up-then-time loops, the summary of a list of frame
times, and the JSON line a tool ends its output with (the line scripts parse)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from game.profiler.stats import percentile


def time_host(fn: Callable[[], Any], frames: int, warmup: int, sync: Callable[[], Any] | None = None) -> list[float]:
    """ms per call of fn after `warmup` untimed calls; `sync` (e.g. torch.cuda.synchronize) ends
    each timed call, so device work is inside its own frame's time."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    out = []
    for _ in range(frames):
        t0 = time.perf_counter_ns()
        fn()
        if sync:
            sync()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def time_cuda(fn: Callable[[], Any], frames: int, warmup: int, stream: Any = None) -> list[float]:
    """Per-call GPU ms from CUDA event pairs recorded around each call, no host sync inside the loop."""
    import torch  # only the CUDA timings need it; the recording and profiler benchmarks do not

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(frames)]
    s = stream or torch.cuda.current_stream()
    for start, end in events:
        start.record(s)
        fn()
        end.record(s)
    torch.cuda.synchronize()
    return [start.elapsed_time(end) for start, end in events]


def summary(ms: Sequence[float]) -> dict[str, float]:
    """fps (from the mean), mean, p50/p95/p99 (game.profiler.stats.percentile), min and max, in ms."""
    a = np.asarray(ms, dtype=np.float64)
    mean = float(a.mean())
    p50, p95, p99 = percentile(a, (50, 95, 99))
    return {"fps": round(1000.0 / mean, 2), "mean_ms": round(mean, 3), "p50_ms": round(float(p50), 3),
            "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3),
            "min_ms": round(float(a.min()), 3), "max_ms": round(float(a.max()), 3)}


def print_result(result: dict[str, Any]) -> None:
    """The tool's result as one JSON object on the last line of its output."""
    print(json.dumps(result), flush=True)
