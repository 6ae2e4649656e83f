"""The writer thread: a full disk stops the recording, keeps the complete frames and takes back what the
frame that did not fit left; a disk too full for the close's reserve refuses the start; kill -9 mid-run
leaves a session readable up to its last line."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from carla_bridge.session import ReplaySource, SessionRecorder
from game.bench.workloads import synthetic_frame
from support.disk import fill_disk_at_frame, tiny_tmpfs
from support.sessions import SIZE, drive, lines_written

REPO = Path(__file__).resolve().parents[3]
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


def test_failing_writer_stops_recording_and_keeps_complete_frames(tmp_path, monkeypatch):
    fill_disk_at_frame(monkeypatch, 4)
    rec = SessionRecorder(tmp_path / "full", {}, size=SIZE)
    drive(rec, 20)
    rec.close()
    assert rec.error and rec.error.startswith("disk full after 4 frames: frame 4 does not fit in ")
    assert rec.frames_written == 4
    meta = json.loads((tmp_path / "full" / "session.json").read_text())
    assert meta["error"] == rec.error and meta["frames"] == 4 and meta["ended_by"] == "disk full"
    assert meta["closed"] is True
    assert len(ReplaySource(tmp_path / "full")) == 4
    assert sorted(p.name for p in (tmp_path / "full" / "labels").iterdir())[-1] == "000003.png"  # not frame 4's
    assert not list((tmp_path / "full").glob(".*"))  # no temporary file, no reserve left


def test_real_full_disk_on_a_tiny_tmpfs():
    with tiny_tmpfs("256k", "the failing-writer test") as mount:
        rec = SessionRecorder(mount / "s", {}, size=SIZE, record_rgb=True)
        drive(rec, 200)  # ~40 kB per frame: fills 256 kB within a few frames
        rec.close()
        assert rec.error and rec.error.startswith("disk full after ")
        replay = ReplaySource(mount / "s")
        assert 0 < len(replay) < 200
        for i, frame in enumerate(replay):
            assert np.array_equal(frame.labels, synthetic_frame(i, SIZE).labels)


def test_a_line_the_disk_cut_short_is_taken_back(tmp_path, monkeypatch):
    """The disk fills up inside frame 3's frames.jsonl line: the part written is truncated away and the
    frame's files removed, so the session ends on a whole line (no 'incomplete line' note)."""
    real_write = os.write

    def write(fd, data):
        if bytes(data[:14]) == b'{"position":3,':
            real_write(fd, data[:20])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    rec = SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False)
    monkeypatch.setattr(os, "write", write)
    drive(rec, 6)
    rec.close()
    assert rec.error.startswith("disk full after 3 frames")
    assert (tmp_path / "s" / "frames.jsonl").read_bytes().endswith(b"}\n") and lines_written(tmp_path / "s") == 3
    assert not (tmp_path / "s" / "labels" / "000003.png").exists()
    replay = ReplaySource(tmp_path / "s")
    assert len(replay) == 3 and replay.notes == [] and replay.meta["ended_by"] == "disk full"


def test_a_disk_too_full_for_the_close_reserve_refuses_the_start():
    with tiny_tmpfs("32k", "test_a_recording_that_cannot_start_leaves_no_empty_session_folder") as mount:
        rec = SessionRecorder(mount / "s", {}, size=SIZE)
        assert rec.error and rec.error.startswith("recording not started") and "disk is full" in rec.error
        rec.close()
        assert list(mount.iterdir()) == []  # neither the reserve's part nor the folders it made


def test_kill_9_mid_recording_leaves_a_replayable_session(tmp_path):
    path = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", RECORD_FOREVER, str(path)], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 60
        while lines_written(path) < 25 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the recording process died on its own"
        assert lines_written(path) >= 25, "the recorder wrote too few frames in 60 s"
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
