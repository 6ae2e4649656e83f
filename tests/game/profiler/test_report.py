"""Profiler report: schema, known statistics of a scripted session, warm-up skip, PNG, console table,
disabled no-op, live HUD figures, the CUDA path (fake torch) and its CPU fallback, frame accounting
(begun but unfinished frames) and runs cut short."""

import json
import types

import pytest

from game.profiler.hooks import hud_lines, timed_render
from game.profiler.profiler import END_TO_END, Profiler
from game.profiler.report import build_report, write_report
from game.profiler.table import stage_table
from support.profiler_clock import scripted_session
from support.profiler import META, clock  # noqa: F401 (clock is a fixture)


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


class _FakeEvent:
    created = 0

    def __init__(self, enable_timing=False):
        self.t = None
        _FakeEvent.created += 1

    def query(self):
        return True  # the fake device is always done

    def record(self):
        self.t = _FakeCuda.clock()

    def elapsed_time(self, other):
        return (other.t - self.t) / 2e6  # the "device" runs at half the host time


class _FakeCuda:
    clock = None
    Event = _FakeEvent

    def __init__(self):
        self.synced = 0
        self.nvtx = types.SimpleNamespace(range_push=self._fail, range_pop=self._fail)

    @staticmethod
    def _fail(*args):
        raise RuntimeError("NVTX functions not installed")  # as on CPU-only builds

    def is_available(self):
        return True

    def get_device_name(self):
        return "Fake GPU"

    def synchronize(self):
        self.synced += 1


def test_cuda_events_give_device_times_and_nvtx_is_guarded(tmp_path, clock, monkeypatch):
    from game.profiler import cuda as cuda_module

    _FakeCuda.clock = clock
    fake_torch = types.SimpleNamespace(cuda=_FakeCuda())
    timer = cuda_module.CudaTimer(fake_torch)
    assert timer.available and not timer.nvtx  # NVTX probe failed: ranges skipped, no crash
    monkeypatch.setattr(cuda_module, "CudaTimer", lambda: timer)
    profiler = Profiler(warmup_frames=1, use_cuda=True, cuda_every=1)
    profiler = scripted_session(clock, warmup=1, frames=4, profiler=profiler)
    profiler.begin_frame()
    with profiler.device_range("render"):  # device time only; the host span comes via add_span
        clock.advance(4.0)
    profiler.end_frame()
    report = write_report(profiler, tmp_path, META)
    assert fake_torch.cuda.synced == 1  # one sync at report time, none per frame
    assert report["cuda_device"] == "Fake GPU"
    assert report["device_ms"]["render"]["p50"] == pytest.approx(1.5)  # 3 ms host / 2
    assert report["device_ms"]["render"]["max"] == pytest.approx(2.0)  # the device_range frame
    assert "source" not in report["device_ms"]  # host-only stages get no events by default
    assert report["stages"]["render"]["count"] == 3  # device_range adds no host span


def test_use_cuda_without_cuda_falls_back_to_host_timing(clock):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the fallback path is for CPU-only builds")
    with pytest.warns(RuntimeWarning, match="CUDA is not available"):
        profiler = Profiler(use_cuda=True, warmup_frames=0)
    scripted_session(clock, warmup=0, frames=2, profiler=profiler)
    assert profiler._cuda is None and len(profiler.measured_frames()) == 2
    assert profiler.device_range("render") is Profiler(enabled=False).stage("x")  # shared no-op
    with profiler.device_range("render"):  # a no-op without CUDA
        pass


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


def test_cuda_stages_none_times_every_stage_on_the_device(tmp_path, clock, monkeypatch):
    from game.profiler import cuda as cuda_module

    _FakeCuda.clock = clock
    timer = cuda_module.CudaTimer(types.SimpleNamespace(cuda=_FakeCuda()))
    monkeypatch.setattr(cuda_module, "CudaTimer", lambda: timer)
    profiler = Profiler(warmup_frames=1, use_cuda=True, cuda_stages=None, cuda_every=1)
    report = write_report(scripted_session(clock, profiler=profiler, warmup=1, frames=4), tmp_path, META)
    assert report["device_ms"]["source"]["count"] == 3 and report["device_ms"]["display"]["p50"] == 0.5


def test_cuda_events_are_harvested_without_sync_and_recycled(tmp_path, clock):
    from game.profiler import cuda as cuda_module

    _FakeCuda.clock = clock
    fake = _FakeCuda()
    timer = cuda_module.CudaTimer(types.SimpleNamespace(cuda=fake))
    _FakeEvent.created = 0
    for frame in range(100):
        for name in ("preprocess", "inference"):
            event = timer.start(name)
            clock.advance(2.0)
            timer.stop(name, frame, event)
    assert fake.synced == 0 and len(timer.resolved) >= 192  # read as they completed, no sync
    assert _FakeEvent.created <= 2 * cuda_module.HARVEST_EVERY + 2  # events come back from the pool
    result = timer.resolve()
    assert len(result) == 200 and all(ms == 1.0 for _name, _frame, ms in result)


def test_device_time_is_sampled_every_nth_frame(tmp_path, clock, monkeypatch):
    from game.profiler import cuda as cuda_module

    _FakeCuda.clock = clock
    timer = cuda_module.CudaTimer(types.SimpleNamespace(cuda=_FakeCuda()))
    monkeypatch.setattr(cuda_module, "CudaTimer", lambda: timer)
    profiler = Profiler(warmup_frames=0, use_cuda=True, cuda_every=3)
    report = write_report(scripted_session(clock, profiler=profiler, warmup=0, frames=10), tmp_path, META)
    assert report["device_ms"]["render"]["count"] == 4  # frames 0, 3, 6, 9
    assert report["stages"]["render"]["count"] == 10  # host time on every frame
    assert report["device_sampled_every_n_frames"] == 3
    with pytest.raises(ValueError, match="cuda_every"):
        Profiler(cuda_every=0)


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
