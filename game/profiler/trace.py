"""Chrome Trace Event format writer (opens in Perfetto and chrome://tracing).

Format: "Trace Event Format" (Google, 2016; https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU).
We emit complete events (ph "X") with ts and dur in microseconds (floats: 3 decimals keep the
nanoseconds of perf_counter_ns), one pid for the process, and one tid per thread, named by metadata
events (ph "M", thread_name / process_name). Complete events on one tid must nest like a call stack;
spans reported from elsewhere (Renderer.last_timings) could in principle overlap partially, so a span
that cannot nest on its thread's track goes to an extra "<thread> (overlap N)" track instead of
producing a trace viewers would draw wrongly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from game.profiler.files import write_text_safely

if TYPE_CHECKING:
    from game.profiler.profiler import Profiler

FRAME_EVENT = "frame"


def _lanes(events: list[tuple[int, int, int]]) -> list[int]:
    """Assign each (start, end, order) event a lane so that events within a lane nest properly.

    Greedy over events sorted by (start, -end): an event fits a lane when, after popping the spans
    that ended at or before its start, the lane's innermost open span contains it.
    """
    stacks: list[list[int]] = []  # per lane: end times of open spans
    lane_of = [0] * len(events)
    for start, end, order in sorted(events, key=lambda e: (e[0], -e[1], e[2])):
        for lane, stack in enumerate(stacks):
            while stack and stack[-1] <= start:
                stack.pop()
            if not stack or end <= stack[-1]:
                stack.append(end)
                lane_of[order] = lane
                break
        else:
            stacks.append([end])
            lane_of[order] = len(stacks) - 1
    return lane_of


def build_trace(profiler: Profiler, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trace as a dict: {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": meta}."""
    pid = os.getpid()
    warmup = profiler.warmup_frames
    # (name, start, end, ident, frame) for stage spans plus one "frame" span per completed frame.
    spans = list(profiler.spans)
    frame_ident = profiler.frame_thread
    for index, (begin, end) in enumerate(zip(profiler.frame_begin_ns, profiler.frame_end_ns)):
        if end is not None:
            spans.append((FRAME_EVENT, begin, end, frame_ident, index))
    if not spans:
        return {"traceEvents": [], "displayTimeUnit": "ms", "otherData": meta or {}}
    t0 = min(span[1] for span in spans)

    by_thread: dict[int, list[int]] = {}
    for i, span in enumerate(spans):
        by_thread.setdefault(span[3], []).append(i)
    # The frame thread first, then others by first span, so Perfetto lists the loop on top.
    idents = sorted(by_thread, key=lambda ident: (ident != frame_ident, by_thread[ident][0]))

    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": "neural-drive"}}
    ]
    next_tid = 1
    for ident in idents:
        members = by_thread[ident]
        lanes = _lanes([(spans[i][1], spans[i][2], k) for k, i in enumerate(members)])
        base_name = profiler.thread_names.get(ident, f"thread {ident}")
        lane_tids: dict[int, int] = {}
        for lane in sorted(set(lanes)):
            tid = lane_tids[lane] = next_tid
            next_tid += 1
            name = base_name if lane == 0 else f"{base_name} (overlap {lane})"
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                           "args": {"sort_index": tid}})
        for k, i in enumerate(members):
            name, start, end, _ident, frame = spans[i]
            events.append({
                "ph": "X", "name": name, "cat": "frame" if name == FRAME_EVENT else "stage",
                "pid": pid, "tid": lane_tids[lanes[k]],
                "ts": round((start - t0) / 1000.0, 3), "dur": round((end - start) / 1000.0, 3),
                "args": {"frame": frame, "warmup": frame < warmup},
            })
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": meta or {}}


def write_trace(profiler: Profiler, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    trace = build_trace(profiler, meta)
    write_text_safely(path, json.dumps(trace, default=str, separators=(",", ":")))
    return path
