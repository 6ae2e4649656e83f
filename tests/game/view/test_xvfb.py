"""A real window under a real X server (Xvfb, Debian's xvfb package; .ci/run installs it): launch.py
opens it without --headless, drives a few ticks and saves a non-trivial screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from support.game import RES, load_png, tiny_model_path  # noqa: F401

REPO = Path(__file__).resolve().parents[3]

pytestmark = [
    pytest.mark.xvfb,
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed (apt-get install xvfb)"),
]


@pytest.fixture
def x_display():
    """Start Xvfb on a free display number; yields ':N'."""
    for number in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            break
    else:
        pytest.skip("no free X display number in :90..:139")
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.skip(f"Xvfb :{number} did not start")
        time.sleep(0.1)
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def test_window_under_xvfb_saves_a_screenshot(x_display, tiny_model_path, tmp_path):
    shot = tmp_path / "window.png"
    env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=x_display, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, str(REPO / "launch.py"), "--source", "procedural", "--model", str(tiny_model_path),
         "--res", RES, "--window", "384x128", "--backend", "torch", "--device", "cpu", "--frames", "4",
         "--screenshot", str(shot)],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "headless" not in result.stdout  # a real window, not the fallback
    image = load_png(shot)
    assert image.shape == (128, 384, 3)
    left, middle = image[32:64, :128].astype(int), image[32:64, 128:256].astype(int)
    assert image.std() > 5 and np.abs(left - middle).mean() > 5
