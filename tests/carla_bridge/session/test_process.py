"""The optional writer process (writer="process"): nothing handed over is lost when the game dies, no
orphan, no /dev/shm leftovers, Ctrl+C closes the session (both writers), a dead writer is an error and not
a crash, and both writers write the same files."""

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

from carla_bridge.core.frames import Control
from carla_bridge.session import ReplaySource, SessionRecorder
from carla_bridge.session import procwriter
from carla_bridge.session.slots import shm_folder
from game.bench.workloads import synthetic_frame

REPO = Path(__file__).resolve().parents[3]
SIZE = (96, 48)
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
# Hands over N frames to a writer on a slow disk (carla_bridge.session.test_errors.slow_disk: 50 ms per file), so most
# are still in the slots, says so, and waits to be killed.
HAND_OVER = """
import sys, time
from carla_bridge.core.frames import Control
from carla_bridge.session import SessionRecorder
from game.bench.workloads import synthetic_frame
rec = SessionRecorder(sys.argv[1], {}, size=(96, 48), video=False, writer="process",
                      writer_hook="carla_bridge.session.test_errors:slow_disk")
for i in range(int(sys.argv[2])):
    frame = synthetic_frame(i, (96, 48), seed=2)
    rec.add(frame, Control(), frame.rgb, {})
assert rec.error is None, rec.error
print(rec._writer.proc.pid, flush=True)
time.sleep(600)
"""
DRIVE_UNTIL_CTRL_C = """
import faulthandler, signal, sys, time
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for stacks if it hangs
from carla_bridge.core.frames import Control
from carla_bridge.session import SessionRecorder
from game.bench.workloads import synthetic_frame
with SessionRecorder(sys.argv[1], {}, size=(96, 48), record_rgb=True, writer=sys.argv[2]) as rec:
    print(rec._writer.proc.pid if sys.argv[2] == "process" else 0, flush=True)
    i = 0
    while True:
        frame = synthetic_frame(i, (96, 48), seed=2)
        rec.add(frame, Control(), frame.rgb, {})
        i += 1
        time.sleep(0.005)
"""


def _alive(pid: int) -> bool:
    """True while pid runs; a zombie (an orphan not reaped yet by a container's init) counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _lines(path: Path) -> int:
    try:
        return (path / "frames.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _shm_files(pid: int) -> list[Path]:
    return list(shm_folder().glob(f"neural-drive-session-{pid}-*"))


def test_kill_9_of_the_game_loses_no_frame_handed_over_and_the_writer_exits(tmp_path):
    path, n = tmp_path / "killed", 12
    game = subprocess.Popen([sys.executable, "-c", HAND_OVER, str(path), str(n)], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, text=True)
    try:
        writer_pid = int(game.stdout.readline())
        # Often the writer is not even up yet (frames.jsonl missing): the slots hold everything.
        assert _lines(path) < n, "the slow disk should still hold frames in the slots when the game dies"
    finally:
        game.send_signal(signal.SIGKILL)
        game.wait(timeout=10)
    # 12 frames x 2 files x 50 ms = 1.2 s of writing left at most; then the orphaned writer exits.
    assert _wait_gone(writer_pid, 30), "the writer process outlived the game (orphan)"
    replay = ReplaySource(path)
    assert len(replay) == n and replay.meta["closed"] is False
    for i, frame in enumerate(replay):
        assert np.array_equal(frame.labels, synthetic_frame(i, SIZE, seed=2).labels)
    assert not _shm_files(game.pid)


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_ctrl_c_closes_the_session_with_every_frame(tmp_path, writer):
    path = tmp_path / "interrupted"
    game = subprocess.Popen([sys.executable, "-c", DRIVE_UNTIL_CTRL_C, str(path), writer], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        writer_pid = int(game.stdout.readline())
        deadline = time.monotonic() + 30
        while _lines(path) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(game.pid, signal.SIGINT)  # what the terminal does on Ctrl+C: the whole foreground group
        try:
            _, err = game.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # Seen twice on a heavily loaded machine, never reproduced: say where every thread was.
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
    assert meta["closed"] is True and meta["error"] is None and meta["record"]["writer"] == writer
    replay = ReplaySource(path)
    assert len(replay) == meta["frames"] >= 20
    # ffmpeg was not interrupted either: every frame is in the video unless dropped by the policy.
    assert meta["video"]["render"] + meta["video_frames_dropped"] == meta["frames"]
    assert writer_pid == 0 or _wait_gone(writer_pid, 10)
    assert not _shm_files(game.pid)


def test_a_dead_writer_process_is_an_error_and_the_drive_goes_on(tmp_path):
    rec = SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False, writer="process")
    assert rec.wait_ready(30)
    for i in range(3):
        rec.add(synthetic_frame(i, SIZE), Control(), None, {})
    deadline = time.monotonic() + 10
    while rec.frames_written < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(rec._writer.proc.pid, signal.SIGKILL)
    rec._writer.proc.wait(timeout=10)
    for i in range(3, 10):  # must not raise
        rec.add(synthetic_frame(i, SIZE), Control(), None, {})
    assert rec.error and "writer process ended unexpectedly" in rec.error
    rec.close()
    meta = json.loads((tmp_path / "s" / "session.json").read_text())
    assert meta["error"] == rec.error and meta["frames"] == 3 == len(ReplaySource(tmp_path / "s"))
    assert not _shm_files(os.getpid())


def test_thread_fallback_when_no_process_can_start(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no processes here")

    monkeypatch.setattr(procwriter, "ProcessWriter", refuse)
    with SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False, writer="process") as rec:
        rec.add(synthetic_frame(0, SIZE), Control(), None, {})
    assert rec.writer_kind == "thread" and rec.frames_written == 1 and rec.error is None
    meta = json.loads((tmp_path / "s" / "session.json").read_text())
    assert meta["record"]["writer"] == "thread" and "no processes here" in meta["notes"][0]


def test_both_writers_write_the_same_session(tmp_path):
    def record(writer: str) -> Path:
        path = tmp_path / writer
        with SessionRecorder(path, {}, size=SIZE, record_rgb=True, record_depth=True, writer=writer) as rec:
            for i in range(5):
                frame = synthetic_frame(i, SIZE, seed=4)
                rec.add(frame, Control(steer=0.1 * i), np.roll(frame.rgb, i, axis=1), {"source": 1.0})
        assert rec.error is None and rec.frames_written == 5
        return path

    a, b = record("process"), record("thread")
    for line_a, line_b in zip((a / "frames.jsonl").read_text().splitlines(),
                              (b / "frames.jsonl").read_text().splitlines(), strict=True):
        rec_a, rec_b = json.loads(line_a), json.loads(line_b)
        rec_a.pop("wall_time"), rec_b.pop("wall_time")
        assert rec_a == rec_b
    for kind in ("labels", "flow", "depth", "rgb"):
        files = sorted(p.name for p in (a / kind).iterdir())
        assert len(files) == 5
        assert all((a / kind / f).read_bytes() == (b / kind / f).read_bytes() for f in files)


def test_unknown_writer_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="writer must be one of"):
        SessionRecorder(tmp_path / "s", {}, size=SIZE, writer="fork")


def test_slot_count_respects_the_backlog_and_the_pipe():
    from carla_bridge.session.procwriter import MESSAGE_BYTES, slot_count

    assert slot_count(10**6, 5 * 10**6, 1 << 20) == 7  # the backlog in bytes, plus two
    assert slot_count(1000, 10**9, 1 << 16) == (1 << 16) // MESSAGE_BYTES  # never more than the pipe holds
    with pytest.raises(OSError, match="not enough shared memory"):
        slot_count(1 << 50, 1 << 60, 1 << 20)
