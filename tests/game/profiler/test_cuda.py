"""The profiler's CUDA path (game.profiler.cuda) on a fake torch: CUDA events give device times, NVTX
is guarded, events are harvested without a sync and recycled, device time is sampled every nth frame;
and the fall-back to host timing on a CPU-only build. tests/game/profiler/test_gpu.py runs it on a real
GPU."""

import types

import pytest

from game.profiler.profiler import Profiler
from game.profiler.report import write_report
from support.profiler import META, clock  # noqa: F401 (clock is a fixture)
from support.profiler_clock import scripted_session


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
