"""The warning before a CPU drive that will not fit in memory (game/startup/memory.py): said when the measured
estimate exceeds what the machine has available, silent otherwise and on the GPU."""

from __future__ import annotations

import pytest

from game.startup import rendering as memory
from support.game import headless_env, make_app, tiny_model_path  # noqa: F401

GIB = 2**30


def test_a_size_beyond_the_available_memory_is_warned_about(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 20 * GIB)
    text = memory.memory_warning((8192, 4096), "cpu")  # without the warning, such a run is killed with no word (exit 137)
    assert text.startswith("warning: at 8192x4096 a drive on the CPU needs about 104 GiB of memory")
    assert "20.0 GiB is available" in text and "pick a smaller --res" in text


@pytest.mark.parametrize("size, device", [((1024, 512), "cpu"), ((8192, 4096), "cuda"), ((8192, 4096), "cuda:1")])
def test_sizes_that_fit_and_gpu_runs_are_not_warned_about(monkeypatch, size, device):
    monkeypatch.setattr(memory, "available_bytes", lambda: 20 * GIB)
    assert memory.memory_warning(size, device) is None


def test_without_a_reading_of_free_memory_nothing_is_said(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    assert memory.memory_warning((8192, 4096), "cpu") is None


def test_this_machine_s_available_memory_is_read():
    available = memory.available_bytes()
    assert available is None or 0 < available < 2**50


def test_the_drive_warns_before_its_source_starts(make_app, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_bytes", lambda: 1)
    make_app("--headless", "--frames", "1")
    err = capsys.readouterr().err
    assert "warning: at 64x32 a drive on the CPU needs about" in err
