"""The drive's clocks: milliseconds per stage of one tick, frame statistics over a short window, the
pacing that keeps simulated time from running ahead of the wall clock, and the profiler's warm-up."""

from __future__ import annotations

import statistics
import time
from collections import deque

# Paced drives drop a lag behind the wall clock above this instead of catching up in fast-forward.
MAX_PACE_LAG_S = 0.1


class StageTimes:
    """Milliseconds per stage of one tick (HUD, recorder) and the same spans for the profiler (a
    disabled profiler drops them at no cost)."""

    def __init__(self, profiler) -> None:
        self.profiler = profiler
        self.ms: dict[str, float] = {}

    def add(self, name: str, start_ns: int, end_ns: int) -> None:
        self.ms[name] = self.ms.get(name, 0.0) + (end_ns - start_ns) / 1e6
        self.profiler.add_span(name, start_ns, end_ns)


class FrameStats:
    """Client frame times and the source's tick rate over a short window, plus every frame time for
    the summary printed at exit."""

    def __init__(self, window: int = 60) -> None:
        self.frame_ms: list[float] = []
        self._recent: deque[tuple[float, int, float]] = deque(maxlen=window)  # wall s, tick index, sim s

    def add(self, frame) -> None:
        """Call once per tick after the frame is shown; the frame time is the wall time between calls."""
        now = time.perf_counter()
        if self._recent:
            self.frame_ms.append((now - self._recent[-1][0]) * 1000.0)
        self._recent.append((now, frame.index, frame.time_s))

    def rates(self) -> tuple[float, float, float]:
        """(client FPS, source ticks per second, sim seconds per wall second)."""
        if len(self._recent) < 2:
            return 0.0, 0.0, 0.0
        (w0, i0, s0), (w1, i1, s1) = self._recent[0], self._recent[-1]
        wall = max(w1 - w0, 1e-9)
        return (len(self._recent) - 1) / wall, max(0, i1 - i0) / wall, max(0.0, s1 - s0) / wall

    def summary(self) -> str:
        # The first interval carries start-up work (allocation, first inference); leave it out.
        times = self.frame_ms[1:] or self.frame_ms
        if not times:
            return "fewer than two frames: no frame time"
        median = statistics.median(times)
        p95 = sorted(times)[min(len(times) - 1, int(0.95 * len(times)))]
        return (f"{len(self.frame_ms) + 1} frames, median frame {median:.1f} ms "
                f"({1000.0 / max(median, 1e-9):.1f} FPS), p95 {p95:.1f} ms")


class Pacer:
    """Keeps simulated time from running ahead of the wall clock (a fast machine would otherwise drive
    in fast-forward). Sleeps only for the remainder of the tick; never blocks on the display."""

    def __init__(self) -> None:
        self.origin: tuple[float, float] | None = None  # (wall s, sim s) the drive is paced from

    def restart(self) -> None:
        self.origin = None

    def pace(self, frame) -> None:
        now = time.perf_counter()
        if self.origin is None or frame.cut:
            self.origin = (now, frame.time_s)
            return
        wall0, sim0 = self.origin
        ahead = (frame.time_s - sim0) - (now - wall0)
        if ahead > 0.5:  # a jump in sim time (replay seek, new episode): re-anchor instead of stalling
            self.origin = (now, frame.time_s)
        elif ahead < -MAX_PACE_LAG_S:
            # Behind the wall clock: a stall (the first inference, a K backend build, a recording start,
            # a window drag) or a machine slower than real time. Catching up would run the ticks unpaced,
            # the drive in fast-forward (a 20 Hz world after a 2 s stall: 0.5 s of sim in 0.05 s of wall,
            # 10x, for 2 s). Drop the lag instead, as a game loop does; the sim goes on at real time.
            self.origin = (now, frame.time_s)
        elif ahead > 0:
            time.sleep(ahead)


def warmup_frames(frames: int | None, compiled: bool = False) -> int:
    """The profiler's warm-up: 10 frames, at most half of a short run (so `--frames 10` measures five
    and `--frames 3` two, not an empty report). A compiled renderer's first frame is never measured,
    even when that leaves nothing: it is the compile (19 s on a 2-core CPU), not the compiled latency."""
    warmup = 10 if frames is None else min(10, frames // 2)
    return max(warmup, 1) if compiled else warmup
