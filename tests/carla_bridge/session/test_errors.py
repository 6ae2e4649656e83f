"""Disk errors stop the recording with a message and never reach the drive; bad folders are named."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from carla_bridge.core.frames import Control
from carla_bridge.session import (
    FORMAT_VERSION, ReplaySource, SessionFormatError, SessionRecorder, open_session,
)
from carla_bridge.session import writer as writer_module
from game.bench.workloads import synthetic_frame
from support.disk import tiny_tmpfs

SIZE = (96, 48)


def _drive(rec: SessionRecorder, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        frame = synthetic_frame(i, SIZE)
        rec.add(frame, Control(), frame.rgb, {})  # must never raise


def test_unwritable_folder_sets_error_and_add_returns(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    rec = SessionRecorder(blocker / "session", {}, size=SIZE)
    assert rec.error and "recording not started" in rec.error and str(blocker) in rec.error
    _drive(rec, 3)
    rec.close()
    rec.close()
    assert rec.frames_written == 0 and not rec.recording


def test_a_recording_that_cannot_start_leaves_no_empty_session_folder(tmp_path, monkeypatch):
    """A full disk at the first write of session.json left <dir>/<stamp>/labels/ and flow/, empty."""
    from carla_bridge.session import recorder as recorder_module

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
        _drive(rec, 2)
    again = SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False)
    assert again.error and "already holds a session" in again.error
    assert len(ReplaySource(tmp_path / "s")) == 2


# Disk faults are injected through writer_hook ("module:function", run inside the writer), because the
# writer is another process by default and a monkeypatch here would not reach it. For the thread writer
# the same hook runs in this process, so the tests register os.replace with monkeypatch to restore it.
def fill_disk_at_frame_4() -> None:
    real_replace, calls = writer_module.os.replace, [0]

    def replace(src, dst):
        calls[0] += 1
        if "flow" in str(dst) and calls[0] > 8:  # the disk fills up in the middle of a frame
            raise OSError(errno.ENOSPC, "No space left on device", str(src))
        real_replace(src, dst)

    writer_module.os.replace = replace


def slow_disk() -> None:
    import time

    real_replace = writer_module.os.replace

    def slow_replace(src, dst):  # a disk that takes 50 ms per file
        time.sleep(0.05)
        real_replace(src, dst)

    writer_module.os.replace = slow_replace


WRITERS = pytest.mark.parametrize("writer", ["process", "thread"])


def _hook(monkeypatch, writer: str, name: str) -> str:
    if writer == "thread":
        monkeypatch.setattr(writer_module.os, "replace", writer_module.os.replace)  # restored after
    return f"{__name__}:{name}"


@WRITERS
def test_failing_writer_stops_recording_and_keeps_complete_frames(tmp_path, monkeypatch, writer):
    hook = _hook(monkeypatch, writer, "fill_disk_at_frame_4")
    rec = SessionRecorder(tmp_path / "full", {}, size=SIZE, writer=writer, writer_hook=hook)
    _drive(rec, 20)
    rec.close()
    assert rec.error and "disk is full" in rec.error and "recording stopped at frame" in rec.error
    assert 0 < rec.frames_written < 20
    meta = json.loads((tmp_path / "full" / "session.json").read_text())
    assert meta["error"] == rec.error and meta["frames"] == rec.frames_written
    assert len(ReplaySource(tmp_path / "full")) == rec.frames_written


def test_a_bad_frame_stops_recording_without_raising(tmp_path):
    rec = SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False)
    _drive(rec, 2)
    rec.add(synthetic_frame(2, (64, 32)), Control(), None, {})
    assert rec.error and "64" in rec.error
    rec.close()
    assert len(ReplaySource(tmp_path / "s")) == 2


def test_real_full_disk_on_a_tiny_tmpfs():
    with tiny_tmpfs("256k", "the failing-writer test") as mount:
        rec = SessionRecorder(mount / "s", {}, size=SIZE, record_rgb=True)
        _drive(rec, 200)  # ~40 kB per frame: fills 256 kB within a few frames
        rec.close()
        assert rec.error and "disk is full" in rec.error
        replay = ReplaySource(mount / "s")
        assert 0 < len(replay) < 200
        for i, frame in enumerate(replay):
            assert np.array_equal(frame.labels, synthetic_frame(i, SIZE).labels)


def _session(tmp_path: Path, n: int = 2) -> Path:
    path = tmp_path / "s"
    with SessionRecorder(path, {}, size=SIZE, video=False) as rec:
        _drive(rec, n)
    return path


def _edit_meta(path: Path, **values) -> None:
    meta = json.loads((path / "session.json").read_text())
    (path / "session.json").write_text(json.dumps({**meta, **values}))


def test_a_null_delta_s_is_accepted(tmp_path):
    path = _session(tmp_path)
    _edit_meta(path, delta_s=None)  # what a source without a fixed step records
    assert len(list(ReplaySource(path))) == 2


def test_not_a_session(tmp_path):
    with pytest.raises(SessionFormatError, match="no such folder"):
        ReplaySource(tmp_path / "nowhere")
    with pytest.raises(SessionFormatError, match="session.json is missing"):
        ReplaySource(tmp_path)
    (tmp_path / "session.json").write_text("{}")
    with pytest.raises(SessionFormatError, match=r"a file; pass the session's folder"):
        ReplaySource(tmp_path / "session.json")


def test_future_format_version(tmp_path):
    path = _session(tmp_path)
    meta = json.loads((path / "session.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (path / "session.json").write_text(json.dumps(meta))
    with pytest.raises(SessionFormatError, match=rf"version {FORMAT_VERSION + 1} is newer"):
        ReplaySource(path)


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "labels" / "000001.png").unlink(), r"000001.png is missing .*line 2"),
    (lambda p: (p / "frames.jsonl").unlink(), r"frames.jsonl is missing"),
    (lambda p: (p / "session.json").write_text("{not json"), r"session.json: cannot be read as JSON"),
    (lambda p: (p / "flow" / "000000.npy").write_bytes(b"garbage"), r"000000.npy: is corrupt or truncated"),
    (lambda p: (p / "session.json").write_text('{"format_version": 1, "size": [1]}'), r"'size'"),
    # a damaged rate: a traceback ('fast') or ffmpeg's "Broken pipe" and raw log (0, -5) at --export
    (lambda p: _edit_meta(p, fps="fast"), r"session.json: 'fps' must be a positive number, got 'fast'$"),
    (lambda p: _edit_meta(p, fps=0), r"'fps' must be a positive number, got 0$"),
    (lambda p: _edit_meta(p, fps=-5), r"'fps' must be a positive number, got -5$"),
    (lambda p: _edit_meta(p, fps=True), r"'fps' must be a positive number, got True$"),
    (lambda p: _edit_meta(p, delta_s=float("nan")), r"'delta_s' must be a positive number, got nan$"),
])
def test_damaged_sessions_name_the_problem(tmp_path, damage, message):
    path = _session(tmp_path)
    damage(path)
    with pytest.raises(SessionFormatError, match=message):
        list(ReplaySource(path))


def test_an_empty_session_is_an_error(tmp_path):
    SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False).close()
    assert open_session(tmp_path / "s").records == []
    with pytest.raises(SessionFormatError, match="no complete frame"):
        ReplaySource(tmp_path / "s")


@WRITERS
def test_a_writer_far_behind_stops_the_recording_instead_of_stalling(tmp_path, monkeypatch, writer):
    import time

    hook = _hook(monkeypatch, writer, "slow_disk")
    per_frame = synthetic_frame(0, SIZE).labels.nbytes * (1 + 8 + 3 + 3)  # labels, flow, render, rgb
    rec = SessionRecorder(tmp_path / "slow", {}, size=SIZE, max_backlog_mb=4 * per_frame / 2**20,
                          writer=writer, writer_hook=hook)
    start = time.perf_counter()
    _drive(rec, 30)
    assert time.perf_counter() - start < 1.0  # 30 frames x 2 files x 50 ms would be 3 s if it blocked
    assert rec.error and "fell" in rec.error and "behind" in rec.error
    rec.close()
    assert 1 <= rec.frames_written <= 6
    assert len(ReplaySource(tmp_path / "slow")) == rec.frames_written


def test_the_check_command(tmp_path, capsys):
    from carla_bridge.session.__main__ import main

    path = _session(tmp_path, n=3)
    assert main([str(path), "--load"]) == 0
    assert "3 frames, 96x48" in capsys.readouterr().out
    (path / "labels" / "000002.png").write_bytes(b"\x89PNG broken")
    assert main([str(path)]) == 0  # files are only opened with --load
    assert main([str(path), "--load"]) == 1
    assert "000002.png: cannot be read" in capsys.readouterr().err


@pytest.mark.parametrize("keep", [0, 5, 50, 200])
def test_a_truncated_npy_is_called_damaged_not_pickled(tmp_path, keep):
    """Cut before its signature, numpy took the file for pickled data and advised allow_pickle."""
    path = _session(tmp_path)
    flow = path / "flow" / "000001.npy"
    flow.write_bytes(flow.read_bytes()[:keep])
    with pytest.raises(SessionFormatError) as error:
        list(ReplaySource(path))
    text = str(error.value)
    assert "000001.npy: is corrupt or truncated" in text and "pickle" not in text, text


def test_a_folder_of_sessions_points_to_the_sessions_inside(tmp_path, capsys):
    from carla_bridge.session.__main__ import main

    root = tmp_path / "sessions"
    for stamp in ("20250101-120000", "20250102-090000"):  # as the R key names them
        with SessionRecorder(root / stamp, {}, size=SIZE, video=False) as rec:
            _drive(rec, 1)
    assert main([str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a folder of 2 sessions (20250101-120000, 20250102-090000)" in err, err
    assert f"e.g. {root / '20250102-090000'} (the latest)" in err


def _fake_ffmpeg(monkeypatch, tmp_path: Path, script: str, reads: bool = True) -> None:
    """Stand in for ffmpeg: a shell script that reads its input (when ``reads``), then does ``script``."""
    import imageio_ffmpeg

    exe = tmp_path / "ffmpeg"
    exe.write_text(f"#!/bin/sh\n{'cat > /dev/null' if reads else ''}\n{script}\n")
    exe.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(exe))


@pytest.mark.parametrize("script, said", [
    # ffmpeg exits with -errno: 228 is 256 - ENOSPC. It used to read "ffmpeg exited with 228: ;"
    ("exit 228", "out.mp4: ffmpeg exited with 228 (no space left on device)"),
    ("echo 'first line' >&2; echo 'Error writing trailer: No space left' >&2; exit 228",
     "out.mp4: ffmpeg exited with 228 (no space left on device): Error writing trailer: No space left"),
    ("exit 1", "out.mp4: ffmpeg exited with 1"),
    ("exit 255", "out.mp4: ffmpeg exited with 255"),  # ffmpeg's own "interrupted", not an errno
])
def test_ffmpeg_exit_status_is_named_in_one_line(tmp_path, monkeypatch, script, said):
    from carla_bridge.session.video import VideoStream

    _fake_ffmpeg(monkeypatch, tmp_path, script)
    stream = VideoStream(tmp_path / "out.mp4", 20.0)
    assert stream.write(np.zeros((8, 8, 3), np.uint8))
    stream.close()
    assert stream.error == said
    # an empty log tells nothing and is not left behind; one with ffmpeg's words is kept
    assert (tmp_path / "out.ffmpeg.log").exists() == ("echo" in script)


def test_a_broken_pipe_says_why_ffmpeg_stopped(tmp_path, monkeypatch):
    from carla_bridge.session.video import VideoStream

    # ffmpeg refuses its input at once (as with a frame rate of 0): it used to read "[Errno 32] Broken
    # pipe" followed by ffmpeg's raw log lines
    _fake_ffmpeg(monkeypatch, tmp_path, "echo 'line 1' >&2; echo 'Error opening input files: Invalid argument' >&2;"
                                        " exit 234", reads=False)
    stream = VideoStream(tmp_path / "out.mp4", 20.0)
    frame = np.zeros((512, 512, 3), np.uint8)  # more than a pipe holds: the write meets the closed end
    assert not all(stream.write(frame) for _ in range(4))
    stream.close()
    assert stream.error == ("out.mp4 stopped after 0 frames sent to ffmpeg: ffmpeg exited with 234 (invalid "
                            "argument): Error opening input files: Invalid argument")


def test_closing_a_video_whose_folder_became_a_file_does_not_raise(tmp_path):
    """The writer thread ended in a NotADirectoryError traceback when the session folder was replaced
    by a file mid-recording (game QA pass): tidying ffmpeg's log is best effort."""
    import shutil

    from carla_bridge.session.video import VideoStream

    folder = tmp_path / "session"
    folder.mkdir()
    stream = VideoStream(folder / "out.mp4", 20.0)  # nothing written yet: close only tidies the log
    shutil.rmtree(folder)
    folder.write_text("a file where the session was")
    stream.close()
    assert stream.error is None
