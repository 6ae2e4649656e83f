"""The profiler's spans as numpy columns, for the report, the trace and the plot.

A long run has millions of spans; per-frame Python dicts or one dict per trace event cost hundreds of
bytes each (a 100,000-frame run needed ~0.5 GB more at exit), numpy columns 32 bytes a span.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class SpanColumns:
    """One row per span, in recording order. Names and thread idents are stored as indices into
    `names` / `idents` (each in order of first appearance), so a row is a few fixed-size numbers."""

    names: list[str]
    idents: list[int]
    name: np.ndarray    # int32 index into names
    thread: np.ndarray  # int32 index into idents
    start: np.ndarray   # int64 perf_counter_ns
    end: np.ndarray     # int64 perf_counter_ns
    frame: np.ndarray   # int64 frame index, -1 before the first frame

    def __len__(self) -> int:
        return len(self.start)

    def durations_ms(self) -> np.ndarray:
        # Same float as the Python (end - start) / 1e6: int64 -> float64 is exact below 2**53 ns.
        return (self.end - self.start) / 1e6


def _codes(values: Iterable[Hashable], count: int) -> tuple[list, np.ndarray]:
    """(distinct values in order of first appearance, int32 index of each value into that list)."""
    index: dict = {}
    codes = np.empty(count, dtype=np.int32)
    for row, value in enumerate(values):
        code = index.get(value)
        if code is None:
            code = index[value] = len(index)
        codes[row] = code
    return list(index), codes


def span_columns(spans: Sequence[tuple[str, int, int, int, int]]) -> SpanColumns:
    """Columns of Profiler.spans: (name, start_ns, end_ns, thread ident, frame) tuples."""
    count = len(spans)
    names, name = _codes((span[0] for span in spans), count)
    idents, thread = _codes((span[3] for span in spans), count)
    return SpanColumns(
        names=names, idents=idents, name=name, thread=thread,
        start=np.fromiter((span[1] for span in spans), dtype=np.int64, count=count),
        end=np.fromiter((span[2] for span in spans), dtype=np.int64, count=count),
        frame=np.fromiter((span[4] for span in spans), dtype=np.int64, count=count),
    )


def append_spans(columns: SpanColumns, name: str, ident: int, start: np.ndarray, end: np.ndarray,
                 frame: np.ndarray) -> SpanColumns:
    """columns followed by spans that all share one name and one thread (e.g. the trace's frames)."""
    names, idents = list(columns.names), list(columns.idents)
    if name not in names:
        names.append(name)
    if ident not in idents:
        idents.append(ident)
    count = len(start)
    return SpanColumns(
        names=names, idents=idents,
        name=np.concatenate([columns.name, np.full(count, names.index(name), dtype=np.int32)]),
        thread=np.concatenate([columns.thread, np.full(count, idents.index(ident), dtype=np.int32)]),
        start=np.concatenate([columns.start, np.asarray(start, dtype=np.int64)]),
        end=np.concatenate([columns.end, np.asarray(end, dtype=np.int64)]),
        frame=np.concatenate([columns.frame, np.asarray(frame, dtype=np.int64)]),
    )


def completed_frames(begin_ns: Sequence[int], end_ns: Sequence[int | None]) -> tuple[np.ndarray, ...]:
    """(index, begin_ns, end_ns) arrays of the frames that reached end_frame (end not None)."""
    done = np.fromiter((end is not None for end in end_ns), dtype=bool, count=len(end_ns))
    index = np.flatnonzero(done)
    begin = np.asarray(begin_ns, dtype=np.int64)[index]
    end = np.fromiter((end_ns[i] for i in index.tolist()), dtype=np.int64, count=len(index))
    return index.astype(np.int64), begin, end


def per_frame_sums(columns: SpanColumns, frames: int) -> dict[str, np.ndarray]:
    """{name: ms per frame 0..frames-1}, NaN in frames without a span of that name.

    A frame's time is the sum of its spans in recording order: np.bincount adds its weights one by
    one in input order, so each sum is the same float a per-frame Python loop gives. Spans
    before the first frame (frame -1) belong to no frame and are dropped.
    """
    durations = columns.durations_ms()
    sums: dict[str, np.ndarray] = {}
    for code, name in enumerate(columns.names):
        rows = (columns.name == code) & (columns.frame >= 0)
        frame = columns.frame[rows]
        total = np.bincount(frame, weights=durations[rows], minlength=frames)[:frames]
        count = np.bincount(frame, minlength=frames)[:frames]
        sums[name] = np.where(count > 0, total, np.nan)
    return sums
