"""Crash consistency: kill -9 a recording process mid-run and replay what it left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from carla_bridge.session import ReplaySource, SessionFormatError, open_session
from game.bench.workloads import synthetic_frame

REPO = Path(__file__).resolve().parents[3]
SIZE = (96, 48)
RECORD_FOREVER = """
import sys, time
from carla_bridge.core.frames import Control
from carla_bridge.session import SessionRecorder
from game.bench.workloads import synthetic_frame
rec = SessionRecorder(sys.argv[1], {"source": "synthetic"}, size=(96, 48), record_rgb=True)
i = 0
while True:
    frame = synthetic_frame(i, (96, 48), seed=5)
    rec.add(frame, Control(throttle=0.3), frame.rgb, {"source": 0.1})
    i += 1
    time.sleep(0.002)
"""


def _lines(path: Path) -> int:
    try:
        return (path / "frames.jsonl").read_bytes().count(b"\n")
    except OSError:
        return 0


def test_kill_9_mid_recording_leaves_a_replayable_session(tmp_path):
    path = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", RECORD_FOREVER, str(path)], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 60
        while _lines(path) < 25 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the recording process died on its own"
        assert _lines(path) >= 25, "the recorder wrote too few frames in 60 s"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    replay = ReplaySource(path)
    assert len(replay) >= 25
    assert replay.meta["closed"] is False  # session.json was never finalized
    for i, frame in enumerate(replay):
        want = synthetic_frame(i, SIZE, seed=5)
        assert np.array_equal(frame.labels, want.labels)
        assert np.array_equal(frame.flow, want.flow) and np.array_equal(frame.rgb, want.rgb)
    assert i == len(replay) - 1


def test_a_truncated_last_line_is_ignored_with_a_note(tmp_path):
    from carla_bridge.core.frames import Control
    from carla_bridge.session import SessionRecorder

    path = tmp_path / "cut"
    with SessionRecorder(path, {}, size=SIZE, video=False) as rec:
        for i in range(3):
            rec.add(synthetic_frame(i, SIZE), Control(), None, {})
    with open(path / "frames.jsonl", "ab") as handle:
        handle.write(b'{"position":3,"index":3,"time_s":0.1')  # killed while writing this line
    replay = ReplaySource(path)
    assert len(replay) == 3
    assert len(replay.notes) == 1 and "line 4 is incomplete" in replay.notes[0]
    # A broken line in the middle is not a crash artefact: it is an error naming the line.
    text = (path / "frames.jsonl").read_text().splitlines()
    (path / "frames.jsonl").write_text("\n".join([text[0], "{oops", text[1]]) + "\n")
    with pytest.raises(SessionFormatError, match=r"frames.jsonl:2: not a JSON record"):
        open_session(path)


def test_a_frames_file_cut_short_after_a_clean_close_is_warned_about(tmp_path):
    # A QA pass cut frames.jsonl to 2 of 4 lines: the replay said "all 2 recorded frames were played".
    from carla_bridge.core.frames import Control
    from carla_bridge.session import SessionRecorder

    path = tmp_path / "cut"
    with SessionRecorder(path, {}, size=SIZE, video=False) as rec:
        for i in range(4):
            rec.add(synthetic_frame(i, SIZE), Control(), None, {})
    lines = (path / "frames.jsonl").read_text().splitlines(keepends=True)
    (path / "frames.jsonl").write_text("".join(lines[:2]))
    replay = ReplaySource(path)
    assert len(replay) == 2
    assert replay.notes == ["frames.jsonl holds 2 frames but session.json says the recording closed with 4 "
                            "(frames.jsonl was cut short since); replaying the 2"]
    # After a crash session.json says closed: false and frames.jsonl is the truth: nothing to warn about.
    meta = json.loads((path / "session.json").read_text())
    (path / "session.json").write_text(json.dumps({**meta, "closed": False}))
    assert ReplaySource(path).notes == []
