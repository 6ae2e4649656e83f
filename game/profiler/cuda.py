"""CUDA device timing and NVTX ranges for the profiler, guarded for CPU-only machines.

torch is imported here only when a Profiler is built with use_cuda=True, so profiling a CPU run never
pays for the import. CUDA events (torch.cuda.Event(enable_timing=True)) are recorded on the current
stream around each stage. They are never waited for during the run (a per-frame sync would distort
the very latency we measure): every HARVEST_EVERY records, the oldest pairs whose end event has
already completed (event.query(), non-blocking) are read and their events go back to a pool, so a
long run neither creates events every frame nor keeps thousands alive; the rest are read with one
synchronize when the report is written.
NVTX ranges (torch.cuda.nvtx.range_push/pop) name the stages in Nsight Systems; on a CPU-only torch
build they raise, hence the guard.
"""

from __future__ import annotations

import warnings
from collections import deque
from typing import Any

HARVEST_EVERY = 32  # records between non-blocking harvests of completed event pairs


class CudaTimer:
    """Records (name, frame, start_event, end_event) and NVTX ranges; inert when CUDA is missing."""

    def __init__(self, torch_module: Any | None = None) -> None:
        self.available = False
        self.nvtx = False
        self.device_name: str | None = None
        self.records: deque[tuple[str, int, Any, Any]] = deque()  # pairs not read yet, oldest first
        self.resolved: list[tuple[str, int, float]] = []
        self._pool: list[Any] = []
        self._torch = torch_module
        self._push = self._pop = None
        if self._torch is None:
            try:
                import torch  # heavy: only for use_cuda=True
            except ImportError:
                warnings.warn("Profiler(use_cuda=True) but torch is not installed: host timing only",
                              RuntimeWarning, stacklevel=3)
                return
            self._torch = torch
        cuda = self._torch.cuda
        if not cuda.is_available():
            warnings.warn("Profiler(use_cuda=True) but CUDA is not available: host timing only",
                          RuntimeWarning, stacklevel=3)
            return
        self.available = True
        self.device_name = str(cuda.get_device_name())
        try:  # NVTX is compiled out of some builds; probe once instead of failing every frame
            cuda.nvtx.range_push("profiler-probe")
            cuda.nvtx.range_pop()
            self.nvtx = True
        except (RuntimeError, AttributeError):
            self.nvtx = False
        self._bind()

    def _bind(self) -> None:
        """Cache the bound functions: attribute chains like torch.cuda.nvtx.range_push cost ~0.1 us
        each and a frame makes a dozen of these calls."""
        cuda = self._torch.cuda
        self._event = cuda.Event
        self._push = cuda.nvtx.range_push if self.nvtx else None
        self._pop = cuda.nvtx.range_pop if self.nvtx else None

    def _take(self) -> Any:
        return self._pool.pop() if self._pool else self._event(enable_timing=True)

    def start(self, name: str, events: bool = True) -> Any:
        """Push the NVTX range and (events=True) record a start event on the current stream."""
        if self._push is not None:
            self._push(name)
        if not events:
            return None
        event = self._take()
        event.record()
        return event

    def stop(self, name: str, frame: int, start_event: Any) -> None:
        if start_event is not None:
            end_event = self._take()
            end_event.record()
            self.records.append((name, frame, start_event, end_event))
            if len(self.records) % HARVEST_EVERY == 0:
                self.harvest()
        if self._pop is not None:
            self._pop()

    def harvest(self) -> None:
        """Read the completed pairs at the old end of the queue without waiting; recycle their events."""
        records, pool = self.records, self._pool
        while records and records[0][3].query():
            name, frame, start, end = records.popleft()
            self.resolved.append((name, frame, float(start.elapsed_time(end))))
            pool.append(start)
            pool.append(end)

    def push_range(self, name: str) -> None:
        if self._push is not None:
            self._push(name)

    def pop_range(self) -> None:
        if self._pop is not None:
            self._pop()

    def resolve(self) -> list[tuple[str, int, float]]:
        """(name, frame, device_ms) for every recorded stage; one synchronize for the unread ones."""
        if not self.available:
            return []
        if self.records:
            self._torch.cuda.synchronize()
            self.harvest()
        return list(self.resolved)
