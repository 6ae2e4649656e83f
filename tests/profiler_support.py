"""What the profiler tests share: the report metadata of a synthetic session, and a fake clock."""

import pytest

from game.profiler.synthetic import FakeClock

META = {"backend": "torch", "device": "cpu", "precision": "fp32", "model": "tiny",
        "resolution": (64, 32), "source": "synthetic"}


@pytest.fixture()
def clock():
    """perf_counter_ns under the test's control (game.profiler.synthetic.FakeClock)."""
    with FakeClock() as fake:
        yield fake
