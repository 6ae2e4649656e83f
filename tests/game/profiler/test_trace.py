"""Chrome trace: valid JSON in Trace Event format, one named track per thread, well nested per track."""

import json
import threading
from collections import defaultdict

import numpy as np
import pytest

from game.profiler.profiler import Profiler
from game.profiler.report import write_report
from support.profiler_clock import FakeClock, scripted_session
from game.profiler.trace import _assign_lanes, build_trace

EPS_US = 0.002  # ts/dur are rounded to 1 ns (0.001 us) each


def _check_well_nested(events):
    """Spans on one tid either nest or are disjoint: never a partial overlap."""
    by_tid = defaultdict(list)
    for event in events:
        if event["ph"] == "X":
            by_tid[event["tid"]].append((event["ts"], event["ts"] + event["dur"]))
    for spans in by_tid.values():
        spans.sort(key=lambda s: (s[0], -s[1]))
        stack = []
        for start, end in spans:
            while stack and stack[-1] <= start + EPS_US:
                stack.pop()
            assert not stack or end <= stack[-1] + EPS_US, f"span {start}..{end} overlaps its parent"
            stack.append(end)
    return by_tid


def _load(tmp_path, profiler):
    write_report(profiler, tmp_path, {"backend": "torch"})
    return json.loads((tmp_path / "trace.json").read_text())


def test_trace_is_valid_chrome_trace_and_well_nested(tmp_path):
    with FakeClock() as clock:
        profiler = scripted_session(clock, warmup=2, frames=6)
    trace = _load(tmp_path, profiler)
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    for event in complete:
        assert {"name", "ph", "ts", "dur", "pid", "tid"} <= set(event)
        assert isinstance(event["ts"], (int, float)) and event["dur"] >= 0
    names = [e["name"] for e in complete]
    assert names.count("frame") == 6 and names.count("inference") == 6
    assert sum(e["args"]["warmup"] for e in complete if e["name"] == "frame") == 2
    # Microseconds: the 2 ms inference span lasts 2000 us.
    assert all(e["dur"] == pytest.approx(2000.0) for e in complete if e["name"] == "inference")
    thread_names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    by_tid = _check_well_nested(events)
    assert set(by_tid) <= set(thread_names) and thread_names[1] == "MainThread"
    frame = next(e for e in complete if e["name"] == "frame" and e["args"]["frame"] == 3)
    render = next(e for e in complete if e["name"] == "render" and e["args"]["frame"] == 3)
    assert frame["ts"] <= render["ts"] and render["ts"] + render["dur"] <= frame["ts"] + frame["dur"] + EPS_US


def test_other_threads_get_their_own_named_track(tmp_path):
    profiler = Profiler(warmup_frames=0)

    def writer():
        with profiler.stage("record"):
            pass

    for _ in range(3):
        profiler.begin_frame()
        with profiler.stage("source"):
            pass
        thread = threading.Thread(target=writer, name="session-writer")
        thread.start()
        thread.join()
        profiler.end_frame()
    events = _load(tmp_path, profiler)["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    record_tids = {e["tid"] for e in events if e["name"] == "record"}
    assert all(names[tid] == "session-writer" for tid in record_tids)
    assert {e["tid"] for e in events if e["name"] == "source"} == {1}
    _check_well_nested(events)


def test_partially_overlapping_spans_move_to_an_overlap_track():
    profiler = Profiler(warmup_frames=0)
    profiler.add_span("upload", 1_000, 5_000)
    profiler.add_span("inference", 3_000, 9_000)  # starts inside upload, ends after it
    profiler.add_span("copy", 3_500, 4_000)        # nests inside upload
    trace = build_trace(profiler)
    by_tid = _check_well_nested(trace["traceEvents"])
    assert len(by_tid) == 2
    names = [e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"]
    assert any("(overlap 1)" in name for name in names)


def test_lane_assignment_nests_adjacent_and_equal_spans():
    # adjacent spans share a lane; identical spans nest; a partial overlap needs a second lane
    starts, ends = np.array([0, 10, 10, 15]), np.array([10, 20, 20, 25])
    assert _assign_lanes(starts, ends).tolist() == [0, 0, 0, 1]


def test_empty_profiler_gives_an_empty_trace():
    assert build_trace(Profiler())["traceEvents"] == []
