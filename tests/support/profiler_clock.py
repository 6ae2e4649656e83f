"""Deterministic synthetic timings for tests and demos: a fake perf_counter_ns clock and a scripted
session whose statistics are known in closed form.

    with FakeClock() as clock:  # patches the profiler's clock
        profiler = scripted_session(warmup=2, frames=12)
"""

from __future__ import annotations

from game.profiler import profiler as profiler_module
from game.profiler.profiler import Profiler


class FakeClock:
    """Replaces the profiler's perf_counter_ns; time only moves when advance() is called."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self.now = start_ns
        self._saved = None

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += int(round(ms * 1e6))

    def __enter__(self) -> FakeClock:
        self._saved = profiler_module._perf_ns
        profiler_module._perf_ns = self
        return self

    def __exit__(self, *exc: object) -> None:
        profiler_module._perf_ns = self._saved


def scripted_session(clock: FakeClock, warmup: int = 2, frames: int = 12, profiler: Profiler | None = None
                     ) -> Profiler:
    """Warm-up frames take 1000 ms of source time (they must not show in any statistic); measured
    frame k (0-based) has source = k + 1 ms, preprocess 0.5, inference 2, download 0.5 (the last
    three reported with add_span inside a "render" stage), display 1, and 0.25 ms of loop overhead,
    so end to end = k + 5.25 ms. Between frames the clock moves 0.75 ms (frame pacing)."""
    profiler = profiler or Profiler(enabled=True, warmup_frames=warmup)
    for i in range(frames):
        k = i - warmup
        profiler.begin_frame()
        with profiler.stage("source"):
            clock.advance(1000.0 if k < 0 else k + 1.0)
        with profiler.stage("render"):
            t0 = clock.now
            clock.advance(0.5)
            t1 = clock.now
            clock.advance(2.0)
            t2 = clock.now
            clock.advance(0.5)
            t3 = clock.now
        profiler.add_span("preprocess", t0, t1)
        profiler.add_span("inference", t1, t2)
        profiler.add_span("download", t2, t3)
        with profiler.stage("display"):
            clock.advance(1.0)
        clock.advance(0.25)
        profiler.end_frame()
        clock.advance(0.75)
    return profiler
