"""SessionRecorder: every file of a session, the back-pressure policy, failed and discarded starts, add()
never raising, and Ctrl+C closing the session with every frame."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from carla_bridge.core.frames import Control, SceneFrame
from carla_bridge.session import FORMAT_VERSION, ReplaySource, SessionRecorder
from carla_bridge.session import recorder as recorder_module
from carla_bridge.session import render_digest
from game.bench.workloads import synthetic_frame
from support.disk import slow_disk
from support.sessions import SIZE, control_at, drive, lines_written, record_session, render_of

REPO = Path(__file__).resolve().parents[3]
N = 8
DRIVE_UNTIL_CTRL_C = """
import faulthandler, signal, sys, time
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for stacks if it hangs
from carla_bridge.core.frames import Control
from carla_bridge.session import SessionRecorder
from game.bench.workloads import synthetic_frame
with SessionRecorder(sys.argv[1], {}, size=(96, 48), record_rgb=True) as rec:
    print("recording", flush=True)
    i = 0
    while True:
        frame = synthetic_frame(i, (96, 48), seed=2)
        rec.add(frame, Control(), frame.rgb, {})
        i += 1
        time.sleep(0.005)
"""


def test_every_file_of_a_session(tmp_path):
    path = tmp_path / "run"
    frames, _ = record_session(path, N, record_rgb=True, record_depth=True)
    meta = json.loads((path / "session.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["size"] == list(SIZE) and meta["fps"] == 20.0
    assert meta["frames"] == N and meta["closed"] is True and meta["error"] is None
    assert meta["model"] == "tiny-test" and meta["backend"] == "torch" and meta["seed"] == 3
    assert meta["project_version"] and "started_at" in meta and "ended_at" in meta
    assert meta["video"] == {"render": N, "engine": N}
    lines = (path / "frames.jsonl").read_text().splitlines()
    assert len(lines) == N
    for i, line in enumerate(lines):
        record = json.loads(line)
        assert record["position"] == i and record["index"] == i
        assert record["time_s"] == pytest.approx(0.05 * i)
        assert record["control"] == control_at(i).as_dict() and record["autopilot"] == (i % 2 == 1)
        assert record["cut"] == (i == 0)
        assert record["timings_ms"] == {"source": 1.5, "inference": 2.25}
        assert record["files"] == ["labels", "flow", "depth", "rgb"]
        assert record["video"] == {"render": True, "engine": True}
        assert record["render"] == render_digest(render_of(frames[i]))
        with Image.open(path / "labels" / f"{i:06d}.png") as image:
            assert image.mode == "L" and image.size == SIZE
        assert np.load(path / "flow" / f"{i:06d}.npy").dtype == np.float32
        assert np.load(path / "depth" / f"{i:06d}.npy").shape == (SIZE[1], SIZE[0])
        with Image.open(path / "rgb" / f"{i:06d}.png") as image:
            assert image.mode == "RGB"
    for name in ("render.mp4", "engine.mp4"):
        video = iio.imread(path / name)
        assert video.shape == (N, SIZE[1], SIZE[0], 3)
    assert not list(path.rglob("*.tmp"))


def test_video_frames_are_dropped_first_when_the_writer_is_behind(tmp_path):
    _, rec = record_session(tmp_path / "run", N, max_video_backlog=0)
    assert rec.video_frames_dropped == N and rec.frames_written == N
    replay = ReplaySource(tmp_path / "run")
    assert len(replay) == N and all(replay.record(i)["video"] == {"render": False} for i in range(N))
    assert "render" in replay.record(0)  # the digest survives for the determinism check


def test_a_writer_far_behind_stops_the_recording_instead_of_stalling(tmp_path, monkeypatch):
    per_frame = synthetic_frame(0, SIZE).labels.nbytes * (1 + 8 + 3 + 3)  # labels, flow, render, rgb
    rec = SessionRecorder(tmp_path / "slow", {}, size=SIZE, max_backlog_mb=4 * per_frame / 2**20)
    slow_disk(monkeypatch)  # 50 ms per file
    start = time.perf_counter()
    drive(rec, 30)
    assert time.perf_counter() - start < 1.0  # 30 frames x 2 files x 50 ms would be 3 s if it blocked
    assert rec.error and "fell" in rec.error and "behind" in rec.error
    rec.close()
    assert 1 <= rec.frames_written <= 6
    assert len(ReplaySource(tmp_path / "slow")) == rec.frames_written


def test_timings_accept_ms_and_ns_pairs_and_skip_junk(tmp_path):
    with SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False) as rec:
        rec.add(synthetic_frame(0, SIZE), Control(), None,
                {"source": 1.25, "inference": (1_000_000, 3_500_000), "bad": "x", "nan": float("nan")})
    assert rec.error is None
    assert ReplaySource(tmp_path / "s").record(0)["timings_ms"] == {"source": 1.25, "inference": 2.5}


def test_a_tick_add_cannot_take_stops_recording_without_raising(tmp_path):
    rec = SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False)
    drive(rec, 2)
    rec.add(SceneFrame(index=2, time_s=0.1, labels=None), Control(), None, {})  # a bug upstream
    assert rec.error and rec.error.startswith("recording stopped at frame 2")
    rec.close()
    assert len(ReplaySource(tmp_path / "s")) == 2


def test_unwritable_folder_sets_error_and_add_returns(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    rec = SessionRecorder(blocker / "session", {}, size=SIZE)
    assert rec.error and "recording not started" in rec.error and str(blocker) in rec.error
    drive(rec, 3)
    rec.close()
    rec.close()
    assert rec.frames_written == 0 and not rec.recording


def test_a_recording_that_cannot_start_leaves_no_empty_session_folder(tmp_path, monkeypatch):
    """A full disk at the first write of session.json leaves none of the folders the start made."""
    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(recorder_module, "atomic_write_json", disk_full)
    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "kept.txt").write_text("the user's")
    rec = SessionRecorder(tmp_path / "sessions" / "new" / "20261126-120000", {}, size=SIZE)
    assert rec.error and "recording not started" in rec.error and "no space" in rec.error.lower()
    assert sorted(p.name for p in (tmp_path / "sessions").iterdir()) == ["kept.txt"]  # what existed stays
    rec.close()


def test_a_folder_that_already_holds_a_session_is_not_overwritten(tmp_path):
    with SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False) as rec:
        drive(rec, 2)
    again = SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False)
    assert again.error and "already holds a session" in again.error
    assert len(ReplaySource(tmp_path / "s")) == 2


def test_an_empty_recording_is_discarded_but_nothing_else_in_its_folder(tmp_path):
    meta = {"source": "synthetic", "delta_s": 0.05}
    empty = SessionRecorder(tmp_path / "sessions" / "a", meta, size=SIZE)
    assert empty.discard_if_empty()
    assert not (tmp_path / "sessions").exists()  # the folders it made, parents included, are gone

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    shared = SessionRecorder(tmp_path / "mine", meta, size=SIZE)
    assert shared.discard_if_empty()
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]

    frames, _ = record_session(tmp_path / "full", n=2)
    kept = SessionRecorder(tmp_path / "one", meta, size=SIZE)
    kept.add(frames[0], control_at(0), None, {})
    assert not kept.discard_if_empty()  # a frame was handed over: it is a session
    assert json.loads((tmp_path / "one" / "session.json").read_text())["frames"] == 1


def test_discarding_a_refused_recorder_leaves_the_session_it_found(tmp_path):
    record_session(tmp_path / "s", n=3)
    before = sorted(p.name for p in (tmp_path / "s").iterdir())
    refused = SessionRecorder(tmp_path / "s", {"source": "synthetic"}, size=SIZE)
    assert "already holds a session" in refused.error
    assert not refused.discard_if_empty()  # it must not delete that session's session.json and frames.jsonl
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == before


def test_ctrl_c_closes_the_session_with_every_frame(tmp_path):
    path = tmp_path / "interrupted"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    game = subprocess.Popen([sys.executable, "-c", DRIVE_UNTIL_CTRL_C, str(path)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert game.stdout.readline() == "recording\n"
        deadline = time.monotonic() + 30
        while lines_written(path) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(game.pid, signal.SIGINT)  # what the terminal does on Ctrl+C: the whole foreground group
        try:
            _, err = game.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # On a heavily loaded machine: say where every thread was.
            os.kill(game.pid, signal.SIGUSR1)
            time.sleep(1.0)
            game.kill()
            _, err = game.communicate()
            pytest.fail(f"the drive did not end within 60 s of its Ctrl+C; its threads then:\n{err[-6000:]}")
    finally:
        if game.poll() is None:
            game.kill()
    assert "KeyboardInterrupt" in err
    meta = json.loads((path / "session.json").read_text())
    assert meta["closed"] is True and meta["error"] is None and meta["record"]["writer"] == "thread"
    replay = ReplaySource(path)
    assert len(replay) == meta["frames"] >= 20
    # ffmpeg was not interrupted either: every frame is in the video unless dropped by the policy.
    assert meta["video"]["render"] + meta["video_frames_dropped"] == meta["frames"]


def test_a_relative_folder_is_the_one_the_recording_started_in(tmp_path, monkeypatch):
    """A recorder closed after the working folder changed (a test's chdir undone, an atexit close)
    still finishes its own session, not a new one under the new working folder."""
    (tmp_path / "start").mkdir()
    (tmp_path / "later").mkdir()
    monkeypatch.chdir(tmp_path / "start")
    rec = SessionRecorder("rec", {}, size=SIZE, video=False)
    drive(rec, 2)
    monkeypatch.chdir(tmp_path / "later")
    rec.close()
    assert json.loads((tmp_path / "start" / "rec" / "session.json").read_text())["frames"] == 2
    assert list((tmp_path / "later").iterdir()) == []
