"""QA of the profiling mode: frame accounting, cut-short runs, interrupted backend comparisons, the
comparison verdict, the plot's labels and the console table's wording. Synthetic clocks and fake
renderers only: no model, no window."""

import json
import sys
import time

import pytest

from game.bench.workloads import synthetic_frame
from game.profiler.compare import compare_backends
from game.profiler.profiler import Profiler
from game.profiler.report import write_report
from game.profiler.report import build_report
from support.profiler_clock import scripted_session
from game.profiler.table import comparison_table, stage_table
from support.profiler import META, clock, install_fake_runtime  # noqa: F401 (clock is a fixture)

SIZE = META["resolution"]


# ----------------------------------------------------------------- frame accounting
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


# ----------------------------------------------------------------- cut-short drives
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


# ----------------------------------------------------------------- backend comparison
@pytest.fixture()
def fake_runtime(monkeypatch):
    return install_fake_runtime(monkeypatch, ["slow", "fast"], ("slow", "fast", "absent"))


def _frames(count):
    return [synthetic_frame(i, SIZE) for i in range(count)]


def test_comparison_names_the_fastest_backend(fake_runtime, capsys):
    rows = compare_backends(_frames(6), model=object(), size=SIZE, warmup_frames=1)
    assert rows[0]["p50"] > rows[1]["p50"]
    out = capsys.readouterr().out
    assert "fastest: fast" in out and "fastest: slow" not in out


def test_comparison_table_verdict_skips_failed_and_empty_rows():
    rows = [{"backend": "a", "error": "RuntimeError: no"},
            {"backend": "b", "error": None, "p50": 3.0, "frames": 4},
            {"backend": "c", "error": None, "p50": 1.5, "frames": 4},
            {"backend": "d", "error": None, "p50": None, "frames": 0}]
    text = comparison_table(rows)
    assert "fastest: c" in text and "2.0x" in text  # 3.0 / 1.5 against the runner-up b
    assert "fastest" not in comparison_table(rows[:2])  # one measured backend is no comparison


def test_unavailable_backend_says_why(fake_runtime, capsys):
    compare_backends(_frames(3), model=object(), size=SIZE, warmup_frames=1)
    assert "absent (not installed)" in capsys.readouterr().out


def test_interrupted_comparison_keeps_what_was_measured(fake_runtime, tmp_path, capsys):
    fake_runtime.available_backends = lambda device=None: ["fast", "stopped", "slow"]
    with pytest.raises(KeyboardInterrupt):  # still raised: the launcher exits 130
        compare_backends(_frames(8), model=object(), size=SIZE, warmup_frames=1, report_dir=tmp_path)
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert "Ctrl+C" in saved["meta"]["cut_short"]
    fast, stopped = saved["rows"][:2]
    assert fast["frames"] == 7 and fast["cut_short"] is None
    assert stopped["frames"] == 3 and "Ctrl+C" in stopped["cut_short"]  # renders 2..4: warm-up was 1
    assert [r["backend"] for r in saved["rows"]] == ["fast", "stopped", "slow"]
    assert saved["rows"][2]["error"] == "not run: the comparison was stopped (Ctrl+C)"
    partial = json.loads((tmp_path / "stopped" / "report.json").read_text())
    assert partial["frames"]["measured"] == 3 and partial["run"]["cut_short"] is True
    out = capsys.readouterr().out
    assert "backend comparison" in out and "cut short" in out


# ----------------------------------------------------------------- plot and table wording
def test_plot_labels_every_axis_and_draws_end_to_end_like_the_stack(clock):
    from game.profiler.plot import latency_figure
    from game.profiler.report import collect

    data = collect(scripted_session(clock, warmup=1, frames=8))
    figure = latency_figure(data["frames"], data["stage_ms"], data["e2e_ms"], "t")
    for axes in figure.axes:
        assert axes.get_xlabel() and axes.get_ylabel(), axes.get_title()
    timeline = figure.axes[0]
    (e2e,) = [line for line in timeline.get_lines() if line.get_label() == "end_to_end"]
    assert e2e.get_drawstyle() == "steps-mid"  # the stack is step="mid": a plain line cut across it


def test_table_wording_for_one_frame_and_device_sampling(clock):
    profiler = scripted_session(clock, warmup=0, frames=1)
    report = build_report(profiler, META)
    report["device_ms"] = {"render": report["stages"]["render"]}
    report["device_sampled_every_n_frames"] = 2
    text = stage_table(report)
    assert "1 frame measured, 0 warm-up frames skipped" in text
    assert "2th" not in text and "1 frame in 2" in text


def test_sub_10_microsecond_stages_do_not_print_as_zero(clock):
    profiler = Profiler(warmup_frames=0)
    for _ in range(3):
        profiler.begin_frame()
        with profiler.stage("download"):
            clock.advance(0.003)  # 3 us: a real onnxruntime download on the CPU
        profiler.end_frame()
    line = next(l for l in stage_table(build_report(profiler, META)).splitlines() if l.startswith("download"))
    name, count, mean, stdev, *percentiles = line.split()
    assert mean == "<0.01" and set(percentiles) == {"<0.01"}  # 0.003 ms is not 0.00
    assert stdev == "0.00"  # every frame took exactly 3 us: a true zero still reads 0.00


def test_a_signal_wrapped_by_a_backend_library_still_stops_the_comparison(fake_runtime, tmp_path, capsys):
    from game.interrupts import Terminated

    def wrapped(*args, **kwargs):  # onnxruntime's pybind11 start-up turns a signal into ImportError
        try:
            raise Terminated
        except Terminated as stop:
            raise ImportError("initialization failed") from stop

    fake_runtime.Renderer = wrapped
    fake_runtime.available_backends = lambda device=None: ["fast", "slow"]
    with pytest.raises(Terminated):
        compare_backends(_frames(3), model=object(), size=SIZE, warmup_frames=1, report_dir=tmp_path)
    rows = json.loads((tmp_path / "comparison.json").read_text())["rows"]
    assert rows[0]["error"] == "not measured: stopped by SIGTERM after 0 of 3 frames"
    assert rows[1]["error"] == "not run: the comparison was stopped (SIGTERM)"  # not tried after a SIGTERM


def test_a_full_disk_leaves_no_half_written_report_and_names_the_file(tmp_path, clock, monkeypatch):
    import errno

    profiler = scripted_session(clock, warmup=1, frames=4)
    from game.profiler.report import write_report

    write_report(profiler, tmp_path, META, quiet=True)  # a previous, complete report
    import carla_bridge.core.files

    real_fdopen = carla_bridge.core.files.os.fdopen

    class FullDisk:  # the disk fills up half way through the file
        def __init__(self, fd, *args, **kwargs):
            self.handle = real_fdopen(fd, *args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(carla_bridge.core.files.os, "fdopen", FullDisk)
    with pytest.raises(OSError, match=r"report\.json.*No space left on device.*another --report"):
        write_report(profiler, tmp_path, META, quiet=True)
    monkeypatch.undo()
    assert json.loads((tmp_path / "report.json").read_text())["frames"]["measured"] == 3  # still whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.png", "report.json", "trace.json"]
