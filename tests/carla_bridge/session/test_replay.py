"""ReplaySource: a recorded session played back bit-identically, at its size or another one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from carla_bridge.core.frames import Control
from carla_bridge.session import ReplaySource, SessionEnded, SessionFormatError, SessionRecorder, open_session
from support.sessions import SIZE, control_at, record_session

N = 8


def test_replay_is_bit_identical(tmp_path):
    frames, _ = record_session(tmp_path / "run", N, record_rgb=True, record_depth=True)
    with ReplaySource(tmp_path / "run") as replay:
        assert replay.name == "replay" and len(replay) == N and replay.meta["seed"] == 3
        assert replay.notes == []
        first = replay.reset(seed=123)
        assert first.cut and np.array_equal(first.labels, frames[0].labels)
        got = [first] + [replay.step(Control(throttle=1.0)) for _ in range(N - 1)]
        with pytest.raises(SessionEnded):
            replay.step(Control())
        assert replay.controls == [control_at(i) for i in range(N)]
        assert replay.control == control_at(N - 1)
    for want, have in zip(frames, got, strict=True):
        assert have.index == want.index and have.time_s == want.time_s and have.cut == want.cut
        assert np.array_equal(have.labels, want.labels) and have.labels.dtype == np.uint8
        assert np.array_equal(have.flow, want.flow) and have.flow.dtype == np.float32
        assert np.array_equal(have.depth, want.depth)
        assert np.array_equal(have.rgb, want.rgb)
        assert have.ego == want.ego
        have.validate()
    again = ReplaySource(tmp_path / "run")
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(again, got, strict=True))


def test_optional_arrays_are_absent_unless_asked(tmp_path):
    record_session(tmp_path / "run", n=3, video=False, record_flow=False)
    path = tmp_path / "run"
    assert not (path / "render.mp4").exists() and not (path / "rgb").exists()
    frame = ReplaySource(path).reset()
    assert frame.flow is None and frame.depth is None and frame.rgb is None
    assert json.loads((path / "frames.jsonl").read_text().splitlines()[0])["video"] == {}


def test_replay_at_another_resolution_rescales_flow(tmp_path):
    frames, _ = record_session(tmp_path / "run", n=2)
    frame = ReplaySource(tmp_path / "run", size=(48, 24)).reset()
    assert frame.labels.shape == (24, 48) and frame.flow.shape == (24, 48, 2)
    assert np.array_equal(frame.labels, frames[0].labels[1::2, 1::2])
    assert np.allclose(frame.flow, frames[0].flow[1::2, 1::2] * 0.5)


def test_an_empty_session_is_an_error(tmp_path):
    SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False).close()
    assert open_session(tmp_path / "s").records == []
    with pytest.raises(SessionFormatError, match="no complete frame"):
        ReplaySource(tmp_path / "s")
