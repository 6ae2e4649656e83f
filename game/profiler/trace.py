"""Chrome Trace Event format writer (opens in Perfetto and chrome://tracing).

Format: "Trace Event Format" (Google, 2016; https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU).
We emit complete events (ph "X") with ts and dur in microseconds (floats: 3 decimals keep the
nanoseconds of perf_counter_ns), one pid for the process, and one tid per thread, named by metadata
events (ph "M", thread_name / process_name). Complete events on one tid must nest like a call stack;
spans reported from elsewhere (Renderer.last_timings) could in principle overlap partially, so a span
that cannot nest on its thread's track goes to an extra "<thread> (overlap N)" track instead of
producing a trace viewers would draw wrongly.

A long run has millions of events, so write_trace streams them to the file one by one from numpy
columns (columns.py) instead of building the whole trace as dicts and one JSON string: a 100,000-frame
run needed ~0.5 GB more for that at exit. build_trace parses the same text back, for small runs.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from game.profiler.columns import SpanColumns, append_spans, completed_frames, span_columns
from game.profiler.files import open_text_safely
from game.profiler.profiler import Profiler

FRAME_EVENT = "frame"
# Events are turned into Python numbers this many at a time: a whole long run at once (.tolist() of
# every column) would cost ~40 bytes per number again, what the columns are there to save.
CHUNK = 65536


def _chunks(count: int) -> Iterator[slice]:
    for first in range(0, count, CHUNK):
        yield slice(first, first + CHUNK)


def _assign_lanes(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Assign each event (row of starts/ends) a lane so that events within a lane nest properly.

    Greedy over events sorted by (start, -end, row): an event fits a lane when, after popping the
    spans that ended at or before its start, the lane's innermost open span contains it.
    """
    # lexsort sorts by its last key first and is stable, so equal (start, -end) keep row order.
    order = np.lexsort((-ends, starts))
    stacks: list[list[int]] = []  # per lane: end times of open spans
    lane_of = np.zeros(len(starts), dtype=np.int32)
    for chunk in _chunks(len(order)):
        rows = order[chunk]
        # tolist(): iterating Python ints is several times faster than indexing numpy arrays
        for row, start, end in zip(rows.tolist(), starts[rows].tolist(), ends[rows].tolist()):
            for lane, stack in enumerate(stacks):
                while stack and stack[-1] <= start:
                    stack.pop()
                if not stack or end <= stack[-1]:
                    stack.append(end)
                    lane_of[row] = lane
                    break
            else:
                stacks.append([end])
                lane_of[row] = len(stacks) - 1
    return lane_of


def _trace_columns(profiler: Profiler) -> SpanColumns:
    """Stage spans plus one "frame" span per completed frame, on the frame thread."""
    columns = span_columns(profiler.spans)
    index, begin, end = completed_frames(profiler.frame_begin_ns, profiler.frame_end_ns)
    if len(index) == 0:
        return columns
    return append_spans(columns, FRAME_EVENT, profiler.frame_thread, begin, end, index)


def _thread_order(columns: SpanColumns, frame_ident: int | None) -> list[int]:
    """Thread codes: the frame thread first, then others by first span, so Perfetto lists the loop
    on top (codes are already numbered by first span)."""
    return sorted(range(len(columns.idents)), key=lambda code: (columns.idents[code] != frame_ident, code))


def _complete_event(name_json: str, cat: str, pid: int, tid: int, ts: float, dur: float, frame: int,
                    warmup: bool) -> str:
    """One complete event as JSON text, exactly what json.dumps(separators=(",", ":")) gives for
    {"ph": "X", "name", "cat", "pid", "tid", "ts", "dur", "args": {"frame", "warmup"}}: json writes
    floats with repr() too. Formatted directly because a long run has millions of these and building
    a dict and encoding it per event took 2.5x as long."""
    return (f'{{"ph":"X","name":{name_json},"cat":"{cat}","pid":{pid},"tid":{tid},"ts":{ts!r},"dur":{dur!r},'
            f'"args":{{"frame":{frame},"warmup":{"true" if warmup else "false"}}}}}')


def _metadata_event(name: str, pid: int, tid: int, args: dict[str, Any]) -> str:
    return json.dumps({"ph": "M", "name": name, "pid": pid, "tid": tid, "args": args}, separators=(",", ":"))


def _event_texts(profiler: Profiler) -> Iterator[str]:
    """Every trace event as JSON text, one at a time: the process name, then per thread its track
    names and its complete events (ph "X") in recording order, frames last."""
    columns = _trace_columns(profiler)
    if len(columns) == 0:
        return
    pid = os.getpid()
    warmup = profiler.warmup_frames
    t0 = int(columns.start.min())
    names_json = [json.dumps(name) for name in columns.names]
    cats = ["frame" if name == FRAME_EVENT else "stage" for name in columns.names]
    yield _metadata_event("process_name", pid, 0, {"name": "neural-drive"})
    next_tid = 1
    for code in _thread_order(columns, profiler.frame_thread):
        rows = np.flatnonzero(columns.thread == code)
        lanes = _assign_lanes(columns.start[rows], columns.end[rows])
        ident = columns.idents[code]
        base_name = profiler.thread_names.get(ident, f"thread {ident}")
        lane_tids: dict[int, int] = {}
        for lane in np.unique(lanes).tolist():
            tid = lane_tids[lane] = next_tid
            next_tid += 1
            name = base_name if lane == 0 else f"{base_name} (overlap {lane})"
            yield _metadata_event("thread_name", pid, tid, {"name": name})
            yield _metadata_event("thread_sort_index", pid, tid, {"sort_index": tid})
        for chunk in _chunks(len(rows)):
            part = rows[chunk]
            for name_code, start, end, frame, lane in zip(
                    columns.name[part].tolist(), columns.start[part].tolist(), columns.end[part].tolist(),
                    columns.frame[part].tolist(), lanes[chunk].tolist()):
                yield _complete_event(names_json[name_code], cats[name_code], pid, lane_tids[lane],
                                      round((start - t0) / 1000.0, 3), round((end - start) / 1000.0, 3),
                                      frame, frame < warmup)


def _write_trace_text(file: TextIO, profiler: Profiler, meta: dict[str, Any] | None) -> None:
    """{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": meta}, one event at a time."""
    file.write('{"traceEvents":[')
    for count, event in enumerate(_event_texts(profiler)):
        if count:
            file.write(",")
        file.write(event)
    file.write('],"displayTimeUnit":"ms","otherData":')
    file.write(json.dumps(meta or {}, default=str, separators=(",", ":")))
    file.write("}")


def build_trace(profiler: Profiler, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trace as a dict: {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": meta}.
    Parsed back from the text write_trace writes, so the two cannot disagree; holds every event in
    memory, so it is for tests and small runs."""
    text = io.StringIO()
    _write_trace_text(text, profiler, meta)
    return json.loads(text.getvalue())


def write_trace(profiler: Profiler, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Stream the trace into path (through a temporary file, see files.open_text_safely)."""
    path = Path(path)
    with open_text_safely(path) as file:
        _write_trace_text(file, profiler, meta)
    return path
