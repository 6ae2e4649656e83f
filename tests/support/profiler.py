"""What the profiler tests share: the report metadata of a synthetic session, a fake clock, and a
fake runtime for the backend comparison."""

import time
import types

import numpy as np
import pytest

from game.profiler import compare
from support.profiler_clock import FakeClock

META = {"backend": "torch", "device": "cpu", "precision": "fp32", "model": "tiny",
        "resolution": (64, 32), "source": "synthetic"}


@pytest.fixture()
def clock():
    """perf_counter_ns under the test's control (support.profiler_clock.FakeClock)."""
    with FakeClock() as fake:
        yield fake


class FakeRenderer:
    """Duck-typed Renderer whose image depends on the frame only. Backend names act: 'slow' sleeps 2 ms
    per render, 'broken' fails to start, 'stopped' is hit by Ctrl+C on its 5th render."""

    def __init__(self, model, backend="auto", device=None, precision="fp32", size=META["resolution"],
                 compile=False):
        if backend == "broken":
            raise RuntimeError("engine build failed")
        self.backend_name, self.device_name, self.precision = backend, device or "cpu", precision
        self.model_name, self.size, self.last_timings = "fake", size, {}
        self.compiled = False
        self.renders = 0

    def close(self):
        pass

    def reset(self):
        self.renders = 0

    def render(self, frame):
        self.renders += 1
        if self.backend_name == "stopped" and self.renders == 5:
            raise KeyboardInterrupt
        t0 = time.perf_counter_ns()
        if self.backend_name == "slow":
            time.sleep(0.002)
        image = np.repeat(frame.labels[..., None], 3, axis=2)
        t1 = time.perf_counter_ns()
        self.last_timings = {"preprocess": (t0, t0), "inference": (t0, t1), "download": (t1, t1)}
        return image


def install_fake_runtime(monkeypatch, available: list[str], known: tuple[str, ...]) -> types.ModuleType:
    """Stand the comparison's neural_render.runtime in with FakeRenderer: ``available`` backends here,
    of ``known``."""
    module = types.ModuleType("neural_render.runtime")
    module.Renderer = FakeRenderer
    module.available_backends = lambda device=None: list(available)
    module.BACKENDS = known
    module.unavailable_reason = lambda name, device: "not installed"
    monkeypatch.setattr(compare, "runtime", module)
    return module
