"""Fault suite (README, Reliability): a Renderer misused as a library user might (two threads at once,
after close, bad frames), and a damaged ONNX cache under a real headless drive on ONNX Runtime."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest

from neural_render.checkpoint import load_generator
from neural_render.runtime import Renderer
from neural_render.runtime.onnx import cached_onnx, export_stamp, stamp_problem
from support.game import RES, tiny_model_path  # noqa: F401 (fixture)
from support.runtime import random_frame, tiny_generator_with_flow

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.fault
SIZE = (64, 32)
ONE_PER_THREAD = "in use by another thread: use one Renderer per thread"


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_two_threads_on_one_renderer_get_their_own_frames_or_the_clear_error(backend, tmp_path, monkeypatch):
    """Two threads render through one Renderer as fast as they can, every frame a cut (so each frame's
    right image is known on its own): a frame that comes back is that thread's own, never the other's;
    a refused one is the clear error. Nothing else is raised."""
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    model = tiny_generator_with_flow()
    shared, reference = (Renderer(model, backend=backend, device="cpu", size=SIZE) for _ in range(2))
    frames = {seed: random_frame(seed, SIZE, cut=True) for seed in range(2)}
    expected = {seed: reference.render(f) for seed, f in frames.items()}
    wrong, refused, other = [], [], []
    start = threading.Barrier(2)

    def drive(seed: int) -> None:
        start.wait()
        for _ in range(150):
            try:
                image = shared.render(frames[seed])
            except RuntimeError as error:
                (refused if ONE_PER_THREAD in str(error) else other).append(error)
                continue
            if not np.array_equal(image, expected[seed]):
                wrong.append(seed)

    threads = [threading.Thread(target=drive, args=(seed,)) for seed in frames]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not wrong and not other, (len(wrong), other[:1])
    assert shared.frames_rendered + len(refused) == 300


def test_a_closed_renderer_and_bad_frames_are_clear_errors(tmp_path, monkeypatch):
    renderer = Renderer(tiny_generator_with_flow(), backend="onnxruntime", device="cpu", size=SIZE)
    good = random_frame(0, SIZE)
    bad_frames = {
        "size": types.SimpleNamespace(labels=good.labels[:16], flow=None, cut=False),
        "dtype": types.SimpleNamespace(labels=good.labels.astype(np.int32), flow=None, cut=False),
        "label id": types.SimpleNamespace(labels=np.full_like(good.labels, 200), flow=None, cut=False),
        "flow dtype": types.SimpleNamespace(labels=good.labels, flow=good.flow.astype(np.float64), cut=False),
    }
    for kind, bad in bad_frames.items():
        with pytest.raises(ValueError) as caught:
            renderer.render(bad)
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 400, (kind, caught.value)
    assert renderer.render(good).shape == (SIZE[1], SIZE[0], 3)  # the bad frames left it working
    renderer.close()
    for use in (lambda: renderer.render(good), renderer.reset):
        with pytest.raises(RuntimeError, match="is closed: build a new Renderer"):
            use()


def _drive(model: Path, cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PYTHONPATH=str(REPO), NEURAL_DRIVE_CACHE=str(cache))
    return subprocess.run([sys.executable, str(REPO / "launch.py"), "--model", str(model), "--source", "procedural",
                           "--res", RES, "--headless", "--frames", "2", "--backend", "onnxruntime", "--device", "cpu"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=90)


def _damaged_entry(model_path: Path, cache: Path, damage: str) -> tuple[Path, dict]:
    """The cache entry the drive will look for, exported here and then damaged; and its sound stamp."""
    model = load_generator(model_path)
    width, height = (int(v) for v in RES.split("x"))
    entry = cached_onnx(model, width, height, "fp32", cache)
    sound = entry.read_bytes()
    if damage == "folder":
        entry.unlink()
        entry.mkdir()
    else:
        entry.write_bytes(sound[: len(sound) // 2] if damage == "truncated" else os.urandom(4096))
    return entry, export_stamp(model, width, height, "fp32")


@pytest.mark.slow  # a drive that exports first: ~6 s
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_cached_export_is_exported_again_and_the_drive_runs(tiny_model_path, tmp_path, damage):
    entry, stamp = _damaged_entry(tiny_model_path, tmp_path / "cache", damage)
    result = _drive(tiny_model_path, tmp_path / "cache", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "exporting again" in result.stderr, result.stderr[-2000:]
    assert stamp_problem(entry, stamp) is None


def test_a_folder_under_the_cached_exports_name_ends_the_drive_with_a_clear_error(tiny_model_path, tmp_path):
    entry, _ = _damaged_entry(tiny_model_path, tmp_path / "cache", "folder")
    result = _drive(tiny_model_path, tmp_path / "cache", tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"{entry}: is a folder" in result.stderr and "remove it" in result.stderr, result.stderr[-2000:]
    assert entry.is_dir()
