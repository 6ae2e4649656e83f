"""Long profiled runs: the report of a 100,000-frame session (~7 minutes at 250 fps) must not need
hundreds of MB at exit (every trace event as a dict plus one 94 MB JSON string would be ~0.6 GB more),
and the streamed trace.json must hold the very events a plain all-in-memory writer produces."""

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from game.profiler.report import build_report
from game.profiler.stats import summarize
from support.profiler_clock import FakeClock, scripted_session
from game.profiler.trace import FRAME_EVENT, write_trace

ROOT = Path(__file__).resolve().parents[3]
META = {"backend": "torch", "device": "cpu", "precision": "fp32", "model": "tiny", "resolution": "64x32",
        "source": "synthetic"}


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


# ----------------------------------------------------------------- tests
def test_streamed_trace_holds_the_same_events_as_an_all_in_memory_writer(tmp_path):
    with FakeClock() as clock:
        profiler = _awkward_session(clock)
    path = write_trace(profiler, tmp_path / "trace.json", META)
    written = json.loads(path.read_text(encoding="utf-8"))  # valid JSON, as a whole
    reference = _reference_trace(profiler, META)
    assert _event_multiset(written) == _event_multiset(reference)
    assert written["displayTimeUnit"] == "ms" and written["otherData"] == META
    assert any("(overlap 1)" in str(event["args"]) for event in written["traceEvents"])
    assert not list(tmp_path.glob("*.partial"))


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


def test_stage_figures_count_only_the_frames_a_stage_ran_in():
    # The report keeps per-frame figures in arrays (NaN = did not run): a stage that runs every
    # other frame, and spans before the first frame, must give the same summary as summing by hand.
    with FakeClock() as clock:
        from game.profiler.profiler import Profiler

        profiler = Profiler(warmup_frames=2)
        profiler.add_span("record", 0, 7_000_000)  # before the first frame: in no frame's figures
        for i in range(12):
            profiler.begin_frame()
            with profiler.stage("source"):
                clock.advance(1.0 + i)
            if i % 2:
                profiler.add_span("record", clock.now, clock.now + 250_000 * i)
                profiler.add_span("record", clock.now, clock.now + 1_000_000)  # two spans: summed
            profiler.end_frame()
    report = build_report(profiler, META)
    by_hand = {}
    for name, start, end, _ident, frame in profiler.spans:
        if frame >= 2:
            by_hand.setdefault(name, {}).setdefault(frame, 0.0)
            by_hand[name][frame] += (end - start) / 1e6
    assert report["stages"]["record"] == summarize(by_hand["record"].values())
    assert report["stages"]["record"]["count"] == 5
    assert report["stages"]["source"] == summarize(by_hand["source"].values())
    assert report["end_to_end"]["count"] == 10


MEMORY_SCRIPT = """
import resource, sys
import game.profiler.plot, game.profiler.report, game.profiler.trace  # imports are not the report's cost
import matplotlib.backends.backend_agg, matplotlib.figure
from game.profiler.report import write_report
from support.profiler_clock import FakeClock, scripted_session

with FakeClock() as clock:
    profiler = scripted_session(clock, warmup=10, frames=int(sys.argv[2]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
report = write_report(profiler, sys.argv[1], {"backend": "torch"}, quiet=True)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(report["frames"]["measured"], grown // 1024)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads ru_maxrss in KiB, as Linux reports it")
def test_a_100k_frame_report_needs_little_memory_at_exit(tmp_path):
    # A fresh process, so the peak RSS is this report's alone. Measured on a 2-core box: an
    # all-in-memory writer grows the peak by ~630 MB (collect's dicts ~100 MB, the trace's dicts and
    # string ~530 MB); the streamed one by ~85 MB, most of it matplotlib drawing 100,000 points. 250 MB
    # leaves room for other allocators and still fails an all-in-memory writer.
    frames = 100_000
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path), str(frames)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")])))
    assert result.returncode == 0, result.stderr
    measured, grown_mb = map(int, result.stdout.split())
    assert measured == frames - 10
    assert grown_mb < 250, f"writing the report of {frames} frames grew the peak RSS by {grown_mb} MB"
    trace = tmp_path / "trace.json"
    assert trace.stat().st_size > 90e6 and trace.read_bytes()[-1:] == b"}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.png", "report.json", "trace.json"]
    assert np.isfinite(json.loads((tmp_path / "report.json").read_text())["end_to_end"]["p99"])
