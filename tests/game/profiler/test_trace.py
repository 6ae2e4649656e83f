"""Chrome trace: valid JSON in Trace Event format, one named track per thread, well nested per track;
streamed to the file, it holds the very events a plain all-in-memory writer produces, and a write that
fails half way leaves the previous trace.json whole."""

import json
import os
import threading
from collections import Counter, defaultdict

import numpy as np
import pytest

from game.profiler.profiler import Profiler
from game.profiler.report import write_report
from game.profiler.trace import FRAME_EVENT, _assign_lanes, build_trace, write_trace
from support.profiler_clock import FakeClock, scripted_session

META = {"backend": "torch", "device": "cpu", "precision": "fp32", "model": "tiny", "resolution": "64x32",
        "source": "synthetic"}
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


# ------------------------------------------------------- the reference: an all-in-memory writer
def _reference_lanes(events):
    """Lane assignment written the plain way (a stack of open spans per lane), as the reference."""
    stacks = []
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


def _reference_trace(profiler, meta):
    """build_trace written the plain way (every event as a dict, all in memory), as the reference."""
    pid = os.getpid()
    spans = list(profiler.spans)
    for index, (begin, end) in enumerate(zip(profiler.frame_begin_ns, profiler.frame_end_ns)):
        if end is not None:
            spans.append((FRAME_EVENT, begin, end, profiler.frame_thread, index))
    if not spans:
        return {"traceEvents": [], "displayTimeUnit": "ms", "otherData": meta}
    t0 = min(span[1] for span in spans)
    by_thread = {}
    for i, span in enumerate(spans):
        by_thread.setdefault(span[3], []).append(i)
    idents = sorted(by_thread, key=lambda ident: (ident != profiler.frame_thread, by_thread[ident][0]))
    events = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": "neural-drive"}}]
    next_tid = 1
    for ident in idents:
        members = by_thread[ident]
        lanes = _reference_lanes([(spans[i][1], spans[i][2], k) for k, i in enumerate(members)])
        base_name = profiler.thread_names.get(ident, f"thread {ident}")
        lane_tids = {}
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
                "args": {"frame": frame, "warmup": frame < profiler.warmup_frames},
            })
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": meta}


def _event_multiset(trace):
    return Counter(json.dumps(event, sort_keys=True) for event in trace["traceEvents"])


def _awkward_session(clock):
    """A scripted session plus everything the trace treats specially: a span before the first frame,
    spans from another thread, a partial overlap (overlap track), a non-ASCII name, an unfinished frame."""
    from game.profiler.profiler import Profiler

    profiler = Profiler(warmup_frames=3)
    profiler.add_span("setup", clock.now, clock.now + 2_000)  # frame -1
    scripted_session(clock, frames=40, profiler=profiler)

    def writer():
        profiler.add_span("record", clock.now - 400_000, clock.now)

    thread = threading.Thread(target=writer, name="session-writer")
    thread.start()
    thread.join()
    profiler.add_span("upload", clock.now - 3_000_000, clock.now - 1_000_000)
    profiler.add_span("inférence", clock.now - 2_000_000, clock.now + 1)  # ends after upload: overlaps
    profiler.begin_frame()  # never ended
    return profiler


# ----------------------------------------------------------------- the streamed writer
def test_streamed_trace_holds_the_same_events_as_an_all_in_memory_writer(tmp_path):
    with FakeClock() as clock:
        profiler = _awkward_session(clock)
    path = write_trace(profiler, tmp_path / "trace.json", META)
    written = json.loads(path.read_text(encoding="utf-8"))  # valid JSON, as a whole
    reference = _reference_trace(profiler, META)
    assert _event_multiset(written) == _event_multiset(reference)
    assert written["displayTimeUnit"] == "ms" and written["otherData"] == META
    assert any("(overlap 1)" in str(event["args"]) for event in written["traceEvents"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json"]  # no temporary left


def test_an_error_half_way_through_the_trace_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    import errno

    import game.profiler.trace as trace

    with FakeClock() as clock:
        profiler = scripted_session(clock, warmup=1, frames=200)
    path = write_trace(profiler, tmp_path / "trace.json", META)
    previous = path.read_text()
    real, written = trace._complete_event, []

    def full_disk(*args):  # the disk fills up after a few hundred events have gone to the file
        if len(written) == 300:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(1)
        return real(*args)

    monkeypatch.setattr(trace, "_complete_event", full_disk)
    with pytest.raises(OSError, match=r"trace\.json.*No space left on device.*another --report"):
        write_trace(profiler, path, META)
    assert path.read_text() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json"]  # no half-written .partial
