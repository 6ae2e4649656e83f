"""Profiler report: schema, known statistics of a scripted session, warm-up skip, PNG, console table,
disabled no-op, live HUD figures, frame accounting
(begun but unfinished frames), runs cut short; per-stage figures of stages that skip frames, and the
memory a 100,000-frame report needs at exit (~7 minutes at 250 fps: every trace event as a dict plus
one 94 MB JSON string would be ~0.6 GB more)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from game.profiler.hooks import hud_lines, timed_render
from game.profiler.profiler import END_TO_END, Profiler
from game.profiler.report import build_report, write_report
from game.profiler.stats import summarize
from game.profiler.table import stage_table
from support.profiler import META, clock  # noqa: F401 (clock is a fixture)
from support.profiler_clock import FakeClock, scripted_session

ROOT = Path(__file__).resolve().parents[3]


def test_report_schema_and_known_statistics(tmp_path, clock, capsys):
    profiler = scripted_session(clock, warmup=2, frames=12)
    report = write_report(profiler, tmp_path / "rep", META)
    on_disk = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report, default=str))

    assert report["frames"] == {"recorded": 12, "warmup_skipped": 2, "measured": 10}
    assert list(report["stages"]) == ["source", "preprocess", "inference", "download", "display", "render"]
    source = report["stages"]["source"]  # 1..10 ms: warm-up's 1000 ms frames are left out
    assert source["count"] == 10
    assert (source["mean"], source["p50"], source["p90"], source["p95"], source["p99"], source["max"]) == \
        pytest.approx((5.5, 5.5, 9.1, 9.55, 9.91, 10.0))
    assert source["stdev"] == pytest.approx((55 / 6) ** 0.5)
    assert report["stages"]["inference"]["p99"] == pytest.approx(2.0)
    assert report["stages"]["render"]["mean"] == pytest.approx(3.0)
    e2e = report["end_to_end"]  # k + 5.25 ms for k = 0..9
    assert (e2e["count"], e2e["min"], e2e["p50"], e2e["p95"], e2e["max"]) == \
        pytest.approx((10, 5.25, 9.75, 13.8, 14.25))
    assert report["fps"] == pytest.approx(10 / 0.10425, rel=1e-4)  # 10 frames over 104.25 ms
    assert report["fps_from_p50"] == pytest.approx(1000 / 9.75, rel=1e-4)
    for key in ("backend", "device", "precision", "model", "source"):
        assert report[key] == META[key]
    assert report["resolution"] == "64x32"
    assert {"cpu", "cores", "os", "python", "torch"} <= set(report["machine"])
    assert "linear" in report["percentile_method"]
    assert report["device_ms"] == {}

    out = capsys.readouterr().out
    assert "10 frames measured, 2 warm-up frames skipped, 95.9 fps (measured frames / wall time, over every stage" in out
    assert "end_to_end" in out and "p99" in out


def test_png_written_and_non_empty(tmp_path, clock):
    write_report(scripted_session(clock, warmup=1, frames=6), tmp_path, META)
    png = (tmp_path / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_warmup_longer_than_run_measures_nothing(tmp_path, clock):
    profiler = scripted_session(clock, warmup=5, frames=3)
    report = write_report(profiler, tmp_path, META)
    assert report["frames"] == {"recorded": 3, "warmup_skipped": 3, "measured": 0}
    assert report["end_to_end"]["count"] == 0 and report["fps"] is None
    assert (tmp_path / "trace.json").exists() and (tmp_path / "latency.png").exists()


def test_disabled_profiler_is_a_no_op(tmp_path):
    profiler = Profiler(enabled=False, use_cuda=True)  # use_cuda must not import torch when disabled
    first = profiler.stage("source")
    with first:
        pass
    assert profiler.stage("display") is first  # one shared null context manager
    profiler.begin_frame()
    profiler.add_span("inference", 5, 1)  # not even validated: nothing happens
    profiler.end_frame()
    assert profiler.spans == [] and profiler.frame_begin_ns == [] and profiler._cuda is None
    assert profiler.live_stats() == {} and hud_lines(profiler) == []
    assert write_report(profiler, tmp_path / "none", META) == {}
    assert not (tmp_path / "none").exists()


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="warmup_frames"):
        Profiler(warmup_frames=-1)
    with pytest.raises(ValueError, match="end_ns"):
        Profiler().add_span("x", 10, 5)


def test_live_stats_window_and_cache(clock, monkeypatch):
    import game.profiler.profiler as module

    profiler = scripted_session(clock, warmup=0, frames=10)
    profiler.begin_frame()  # flushes the last frame's stages into the live window
    stats = profiler.live_stats()
    assert stats[END_TO_END] == pytest.approx((9.75, 13.8))  # warm-up 0: k + 5.25, k = 0..9
    assert stats["source"] == pytest.approx((5.5, 9.55))
    version = profiler.live_version
    assert profiler.live_stats() is stats and profiler.live_version == version  # cached
    monkeypatch.setattr(module, "LIVE_REFRESH_S", 0.0)
    profiler.live_stats()
    assert profiler.live_version == version + 1
    lines = hud_lines(profiler)
    assert lines[0].startswith(END_TO_END) and any(line.startswith("inference") for line in lines)


def test_live_window_is_bounded(clock):
    import game.profiler.profiler as module

    profiler = scripted_session(clock, warmup=0, frames=module.LIVE_WINDOW_FRAMES + 30)
    assert len(profiler._live[END_TO_END]) == module.LIVE_WINDOW_FRAMES


def test_timed_render_nests_renderer_spans(clock):
    class FakeRenderer:
        last_timings = {}

        def render(self, frame):
            t0 = clock.now
            clock.advance(1)
            t1 = clock.now
            clock.advance(3)
            self.last_timings = {"preprocess": (t0, t1), "inference": (t1, clock.now)}
            return "image"

    profiler = Profiler(warmup_frames=0)
    profiler.begin_frame()
    assert timed_render(profiler, FakeRenderer(), object()) == "image"
    profiler.end_frame()
    spans = {name: (start, end) for name, start, end, *_ in profiler.spans}
    assert spans["render"][0] <= spans["preprocess"][0] and spans["inference"][1] <= spans["render"][1]
    assert (spans["inference"][1] - spans["inference"][0]) == 3_000_000


def test_spans_from_other_threads_while_frames_begin_do_not_break_live_stats():
    import threading

    profiler = Profiler(warmup_frames=0)
    stop = threading.Event()

    def writer():
        k = 0
        while not stop.is_set():
            profiler.add_span(f"record{k % 50}", 0, 1000)  # new keys: dict growth during flushes
            k += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(2000):
            profiler.begin_frame()
            profiler.end_frame()
    finally:
        stop.set()
        thread.join()
    assert len(profiler.frame_begin_ns) == 2000 and profiler.live_stats()


def test_source_sub_spans_are_named_under_source(clock):
    from game.profiler.hooks import add_source_timings

    class FakeCarla:
        last_timings = {"tick": (0, 2_000_000), "sensor_wait": (2_000_000, 5_000_000)}

    profiler = Profiler(warmup_frames=0)
    profiler.begin_frame()
    add_source_timings(profiler, FakeCarla())
    add_source_timings(profiler, object())  # sources without timings are fine
    profiler.end_frame()
    assert [span[0] for span in profiler.spans] == ["source.tick", "source.sensor_wait"]


def test_a_frame_begun_but_never_ended_is_not_counted_as_recorded(tmp_path, clock, capsys):
    # A replay that runs out begins one more frame (begin_frame, then the source says "ended"):
    # a 25-frame replay reported recorded 26 = 10 warm-up + 15 measured + one frame nobody saw.
    profiler = scripted_session(clock, warmup=2, frames=6)
    profiler.begin_frame()  # the tick whose source step raised SessionEnded
    report = write_report(profiler, tmp_path, META)
    frames = report["frames"]
    assert frames["recorded"] == 6 == frames["warmup_skipped"] + frames["measured"]
    assert report["unfinished_frames"] == 1  # said, not silently dropped


def test_unfinished_frame_inside_the_warm_up_is_not_a_skipped_warm_up_frame(clock):
    profiler = scripted_session(clock, warmup=5, frames=2)
    profiler.begin_frame()
    report = build_report(profiler, META)
    assert report["frames"] == {"recorded": 2, "warmup_skipped": 2, "measured": 0}
    assert report["unfinished_frames"] == 1


def test_a_run_stopped_before_its_frames_says_it_was_cut_short(tmp_path, clock, capsys):
    profiler = scripted_session(clock, warmup=2, frames=12)
    report = write_report(profiler, tmp_path, {**META, "frames_requested": 100000, "ended_by": "SIGTERM"})
    assert report["run"] == {"frames_requested": 100000, "ended_by": "SIGTERM", "cut_short": True}
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["run"]["cut_short"] is True
    out = capsys.readouterr().out
    assert "cut short" in out and "SIGTERM" in out and "12 of 100000" in out


def test_ctrl_c_ending_an_open_ended_drive_is_not_cut_short(clock):
    profiler = scripted_session(clock, warmup=2, frames=12)
    report = build_report(profiler, {**META, "frames_requested": None, "ended_by": "Ctrl+C"})
    assert report["run"] == {"frames_requested": None, "ended_by": "Ctrl+C", "cut_short": False}
    assert "cut short" not in stage_table(report)
    full = build_report(profiler, {**META, "frames_requested": 12})
    assert full["run"]["cut_short"] is False


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
