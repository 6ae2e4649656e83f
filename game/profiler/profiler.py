"""The Profiler: times every stage of every frame on the host (time.perf_counter_ns), plus CUDA events
and NVTX ranges on the GPU, and keeps the raw spans for the report, the trace and the plot.

Frame model: begin_frame() when the controls are sampled, end_frame() after the display flip; their
difference is the end-to-end latency. A span (from stage() or add_span()) belongs to the most recently
begun frame, so work done after the flip (e.g. recording) still counts towards that frame's stage
times, though not towards its end-to-end time. A stage's time in a frame is the sum of its spans there.
Frames with index < warmup_frames are kept in the trace but left out of every statistic.

On CUDA (use_cuda=True) every stage also gets an NVTX range, and the device stages (DEVICE_STAGES, or
all with cuda_stages=None) get CUDA events on every cuda_every-th frame (see CUDA_EVERY for why).

A disabled profiler turns every method into an immediate return (stage() hands back one shared no-op
context manager), so `--profile` off costs a few attribute lookups per frame.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from game.profiler import cuda
from game.profiler.stats import percentile
from neural_render.runtime import STAGES as RENDERER_STAGES

END_TO_END = "end_to_end"
# Canonical stages in pipeline order: the source step, the Renderer's own stages (its last_timings),
# the display and the recorder. Other names are allowed and listed after these.
STAGES = ("source", *RENDERER_STAGES, "display", "record")
# Stages that get CUDA events by default: those that launch device work. Events cost a few us per
# stage (measured on an H200: ~55 us/frame with events on every stage), so host-only stages (source,
# display, record) get an NVTX range only; pass cuda_stages=None to time every stage on the device.
DEVICE_STAGES = ("render", *RENDERER_STAGES)
# Device time is sampled on every CUDA_EVERY-th frame. On an H200 VM one cudaEventRecord cost 7-19 us
# and timing every frame added ~2.1-2.7% to a 4 ms frame (A/B, `python -m game.bench profiler`), over
# the 2% budget; host timing stays on every frame (0.2-0.7%). Pass cuda_every=1 to time every frame on
# the device.
CUDA_EVERY = 4
LIVE_WINDOW_FRAMES = 120  # ~2-6 s of driving: recent enough for the HUD, enough samples for a p95
LIVE_REFRESH_S = 0.25  # live_stats recomputes at most 4x per second, otherwise serves its cache

_perf_ns = time.perf_counter_ns
_get_ident = threading.get_ident


class _NullStage:
    """Shared no-op context manager of a disabled profiler."""

    __slots__ = ()

    def __enter__(self) -> _NullStage:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NULL_STAGE = _NullStage()


class _Stage:
    """Context manager timing one span; a plain class because @contextmanager costs ~1 us more."""

    __slots__ = ("_profiler", "_name", "_start", "_event")

    def __init__(self, profiler: Profiler, name: str) -> None:
        self._profiler = profiler
        self._name = name

    def __enter__(self) -> _Stage:
        profiler = self._profiler
        timer = profiler._cuda
        if timer is not None:
            stages = profiler.cuda_stages
            sampled = profiler._frame % profiler.cuda_every == 0
            self._event = timer.start(self._name, sampled and (stages is None or self._name in stages))
        else:
            self._event = None
        self._start = _perf_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _perf_ns()
        profiler = self._profiler
        frame = profiler._record(self._name, self._start, end)
        if profiler._cuda is not None:
            profiler._cuda.stop(self._name, frame, self._event)


class _DeviceRange:
    """CUDA events and NVTX range around a block, without a host span (see Profiler.device_range)."""

    __slots__ = ("_profiler", "_name", "_event")

    def __init__(self, profiler: Profiler, name: str) -> None:
        self._profiler = profiler
        self._name = name

    def __enter__(self) -> _DeviceRange:
        profiler = self._profiler
        self._event = profiler._cuda.start(self._name, profiler._frame % profiler.cuda_every == 0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._profiler._cuda.stop(self._name, self._profiler._frame, self._event)


class Profiler:
    """Per-stage frame timing; see the module docstring."""

    def __init__(self, enabled: bool = True, warmup_frames: int = 10, use_cuda: bool = False,
                 cuda_stages: tuple[str, ...] | None = DEVICE_STAGES, cuda_every: int = CUDA_EVERY) -> None:
        if not isinstance(warmup_frames, int) or warmup_frames < 0:
            raise ValueError(f"Profiler warmup_frames must be an integer >= 0, got {warmup_frames!r}")
        if not isinstance(cuda_every, int) or cuda_every < 1:
            raise ValueError(f"Profiler cuda_every must be an integer >= 1, got {cuda_every!r}")
        self.enabled = bool(enabled)
        self.cuda_every = cuda_every
        self.warmup_frames = warmup_frames
        self.use_cuda = bool(use_cuda)
        self.cuda_stages = None if cuda_stages is None else frozenset(cuda_stages)
        self.frame_begin_ns: list[int] = []
        self.frame_end_ns: list[int | None] = []
        # (name, start_ns, end_ns, thread ident, frame index or -1 before the first frame)
        self.spans: list[tuple[str, int, int, int, int]] = []
        self.thread_names: dict[int, str] = {}
        self._frame = -1
        self.frame_thread: int | None = None  # thread ident of the loop calling begin_frame
        self._pending: dict[str, int] = {}  # stage ns of the current frame, for live_stats
        self._live: dict[str, deque[float]] = {}
        self._live_cache: dict[str, tuple[float, float]] = {}
        self._live_at = 0.0
        self.live_version = 0  # bumped when live_stats recomputes, so callers can cache formatting
        self.hud_cache: tuple[Any, list[str]] | None = None  # hooks.hud_lines: (key, lines) last formatted
        self._cuda = None
        if self.enabled and self.use_cuda:
            timer = cuda.CudaTimer()
            self._cuda = timer if timer.available else None

    # ----------------------------------------------------------------- recording (hot path)
    def begin_frame(self) -> None:
        """Mark the moment the controls are sampled: the start of the end-to-end latency."""
        if not self.enabled:
            return
        now = _perf_ns()
        if self.frame_thread is None:
            self.frame_thread = _get_ident()
            self.thread_names.setdefault(self.frame_thread, threading.current_thread().name)
        self._flush_live()
        self._frame = len(self.frame_begin_ns)
        self.frame_begin_ns.append(now)
        self.frame_end_ns.append(None)
        if self._cuda is not None:
            self._cuda.push_range(f"frame {self._frame}")

    def end_frame(self) -> None:
        """Mark the frame on screen (after the display flip): the end of the end-to-end latency."""
        if not self.enabled or self._frame < 0 or self.frame_end_ns[self._frame] is not None:
            return
        now = _perf_ns()
        self.frame_end_ns[self._frame] = now
        if self._cuda is not None:
            self._cuda.pop_range()
        self._push_live(END_TO_END, now - self.frame_begin_ns[self._frame])

    def stage(self, name: str) -> _Stage | _NullStage:
        """Context manager timing `name` (host perf_counter_ns; CUDA events and NVTX on CUDA)."""
        if not self.enabled:
            return _NULL_STAGE
        return _Stage(self, name)

    def device_range(self, name: str) -> _DeviceRange | _NullStage:
        """CUDA events + NVTX range only, for code whose host time is recorded with add_span
        (e.g. the game loop's own perf_counter_ns spans). A no-op without CUDA."""
        if self._cuda is None:
            return _NULL_STAGE
        return _DeviceRange(self, name)

    def add_span(self, name: str, start_ns: int, end_ns: int) -> None:
        """Record a span timed elsewhere (e.g. Renderer.last_timings), in perf_counter_ns."""
        if not self.enabled:
            return
        if end_ns < start_ns:
            raise ValueError(f"add_span({name!r}): end_ns {end_ns} is before start_ns {start_ns}")
        self._record(name, int(start_ns), int(end_ns))

    def _record(self, name: str, start: int, end: int) -> int:
        ident = _get_ident()
        if ident not in self.thread_names:
            self.thread_names[ident] = threading.current_thread().name
        frame = self._frame
        self.spans.append((name, start, end, ident, frame))
        self._pending[name] = self._pending.get(name, 0) + (end - start)
        return frame

    # ----------------------------------------------------------------- live HUD figures
    def _flush_live(self) -> None:
        if self._pending:
            # Swap, then snapshot with list() (atomic under the GIL): another thread's add_span may
            # still be writing into the old dict, and iterating it live could raise.
            pending, self._pending = self._pending, {}
            for name, total_ns in list(pending.items()):
                self._push_live(name, total_ns)

    def _push_live(self, name: str, duration_ns: int) -> None:
        window = self._live.get(name)
        if window is None:
            window = self._live[name] = deque(maxlen=LIVE_WINDOW_FRAMES)
        window.append(duration_ns / 1e6)

    def live_stats(self) -> dict[str, tuple[float, float]]:
        """(p50, p95) in ms per stage and end to end over the last LIVE_WINDOW_FRAMES frames.

        Cheap enough to call every frame: the percentiles (120 samples per stage) are recomputed at
        most every LIVE_REFRESH_S seconds and cached in between.
        """
        if not self.enabled:
            return {}
        now = time.perf_counter()
        if now - self._live_at >= LIVE_REFRESH_S:
            self._live_at = now
            self.live_version += 1
            self._live_cache = {
                name: tuple(float(v) for v in percentile(window, (50, 95)))
                for name, window in self._live.items()
                if window
            }
        return self._live_cache

    # ----------------------------------------------------------------- queries used by the report
    @property
    def frames_begun(self) -> int:
        """Frames that reached begin_frame, completed or not (the report's "recorded" counts completed)."""
        return len(self.frame_begin_ns)

    @property
    def frames_completed(self) -> int:
        """Frames that reached end_frame. A replay that runs out begins one more frame (its source
        step raises), and a second Ctrl+C can cut one mid-way: those are begun, never completed."""
        return sum(end is not None for end in self.frame_end_ns)

    @property
    def frames_unfinished(self) -> int:
        return self.frames_begun - self.frames_completed

    @property
    def warmup_skipped(self) -> int:
        """Completed frames left out as warm-up (an unfinished one was never measured at all)."""
        return sum(end is not None for end in self.frame_end_ns[:self.warmup_frames])

    def measured_frames(self) -> list[int]:
        """Indices of completed frames past the warm-up."""
        return [
            i for i in range(self.warmup_frames, self.frames_begun) if self.frame_end_ns[i] is not None
        ]

    def stage_names(self) -> list[str]:
        """Canonical stages first (pipeline order), then others by first appearance."""
        seen = dict.fromkeys(span[0] for span in self.spans)
        return [s for s in STAGES if s in seen] + [s for s in seen if s not in STAGES]

    def device_stage_ms(self) -> dict[str, dict[int, float]]:
        """{stage: {frame: device ms}} from CUDA events (empty without CUDA)."""
        table: dict[str, dict[int, float]] = {}
        if self._cuda is None:
            return table
        for name, frame, ms in self._cuda.resolve():
            per_frame = table.setdefault(name, {})
            per_frame[frame] = per_frame.get(frame, 0.0) + ms
        return table

    @property
    def cuda_device_name(self) -> str | None:
        return self._cuda.device_name if self._cuda is not None else None
