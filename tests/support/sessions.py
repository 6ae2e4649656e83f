"""Sessions for the session tests: synthetic ticks recorded into a folder, with the controls and the
renders they were recorded with, so a test can compare what it reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carla_bridge.core.frames import Control, SceneFrame
from carla_bridge.session import SessionRecorder
from game.bench.workloads import synthetic_frame

SIZE = (96, 48)
META = {"model": "tiny-test", "backend": "torch", "device": "cpu", "precision": "fp32",
        "source": "synthetic", "seed": 3, "delta_s": 0.05}


def control_at(i: int) -> Control:
    return Control(throttle=0.1 * (i % 10), steer=-0.5 + 0.1 * i, brake=0.0, autopilot=i % 2 == 1)


def render_of(frame: SceneFrame) -> np.ndarray:
    return np.ascontiguousarray(np.roll(frame.rgb, frame.index, axis=1))


def record_session(path: Path, n: int = 8, **kwargs) -> tuple[list[SceneFrame], SessionRecorder]:
    """Record ``n`` ticks of seed 3 with META, control_at and render_of; the recorder is closed."""
    frames = [synthetic_frame(i, SIZE, seed=3) for i in range(n)]
    with SessionRecorder(path, META, size=SIZE, **kwargs) as rec:
        for i, frame in enumerate(frames):
            rec.add(frame, control_at(i), render_of(frame), {"source": 1.5, "inference": 2.25})
    assert rec.error is None
    assert rec.frames_written == n
    return frames, rec


def lines_written(path: Path) -> int:
    """The frames.jsonl lines of the session at ``path`` so far (0 before the file exists)."""
    try:
        return (path / "frames.jsonl").read_bytes().count(b"\n")
    except OSError:
        return 0


def drive(rec: SessionRecorder, n: int, start: int = 0) -> None:
    """Hand ``n`` synthetic ticks (seed 0) to ``rec`` as the drive does: add() must never raise."""
    for i in range(start, start + n):
        frame = synthetic_frame(i, SIZE)
        rec.add(frame, Control(), frame.rgb, {})


def small_session(tmp_path: Path, n: int = 2) -> Path:
    """A closed session of ``n`` ticks without video at tmp_path/s."""
    path = tmp_path / "s"
    with SessionRecorder(path, {}, size=SIZE, video=False) as rec:
        drive(rec, n)
    return path
