"""VideoStream: ffmpeg started without a fork that can deadlock, its failures named in one line."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from carla_bridge.session.video import VideoStream


def _fake_ffmpeg(monkeypatch, tmp_path: Path, script: str, reads: bool = True) -> None:
    """Stand in for ffmpeg: a shell script that reads its input (when ``reads``), then does ``script``."""
    exe = tmp_path / "ffmpeg"
    exe.write_text(f"#!/bin/sh\n{'cat > /dev/null' if reads else ''}\n{script}\n")
    exe.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(exe))


def test_starting_ffmpeg_while_another_thread_runs_blas_does_not_deadlock(tmp_path):
    """imageio_ffmpeg.write_frames forks (preexec_fn) and can hang in OpenBLAS's at-fork handler when the
    drive thread is inside a BLAS call; the writer starts ffmpeg with vfork-able arguments instead."""
    stop = threading.Event()

    def blas() -> None:
        a = np.random.default_rng(0).random((192, 192), dtype=np.float32)
        while not stop.is_set():
            a @ a

    def spawn() -> None:
        for i in range(8):
            stream = VideoStream(tmp_path / f"v{i}.mp4", fps=20)
            stream.write(np.zeros((32, 64, 3), np.uint8))
            stream.close()
            assert stream.error is None

    worker = threading.Thread(target=blas, daemon=True)
    worker.start()
    spawner = threading.Thread(target=spawn, daemon=True)
    spawner.start()
    spawner.join(timeout=60)
    stop.set()
    assert not spawner.is_alive(), "starting ffmpeg deadlocked"


@pytest.mark.parametrize("script, said", [
    # ffmpeg exits with -errno: 228 is 256 - ENOSPC; an empty log adds no ': '
    ("exit 228", "out.mp4: ffmpeg exited with 228 (no space left on device)"),
    ("echo 'first line' >&2; echo 'Error writing trailer: No space left' >&2; exit 228",
     "out.mp4: ffmpeg exited with 228 (no space left on device): Error writing trailer: No space left"),
    ("exit 1", "out.mp4: ffmpeg exited with 1"),
    ("exit 255", "out.mp4: ffmpeg exited with 255"),  # ffmpeg's own "interrupted", not an errno
])
def test_ffmpeg_exit_status_is_named_in_one_line(tmp_path, monkeypatch, script, said):
    _fake_ffmpeg(monkeypatch, tmp_path, script)
    stream = VideoStream(tmp_path / "out.mp4", 20.0)
    assert stream.write(np.zeros((8, 8, 3), np.uint8))
    stream.close()
    assert stream.error == said
    # an empty log tells nothing and is not left behind; one with ffmpeg's words is kept
    assert (tmp_path / "out.ffmpeg.log").exists() == ("echo" in script)


def test_a_broken_pipe_says_why_ffmpeg_stopped(tmp_path, monkeypatch):
    # ffmpeg refuses its input at once (as with a frame rate of 0): the message is its exit status and
    # last log line, not "[Errno 32] Broken pipe" with its raw log
    _fake_ffmpeg(monkeypatch, tmp_path, "echo 'line 1' >&2; echo 'Error opening input files: Invalid argument' >&2;"
                                        " exit 234", reads=False)
    stream = VideoStream(tmp_path / "out.mp4", 20.0)
    frame = np.zeros((512, 512, 3), np.uint8)  # more than a pipe holds: the write meets the closed end
    assert not all(stream.write(frame) for _ in range(4))
    stream.close()
    assert stream.error == ("out.mp4 stopped after 0 frames sent to ffmpeg: ffmpeg exited with 234 (invalid "
                            "argument): Error opening input files: Invalid argument")


def test_closing_a_video_whose_folder_became_a_file_does_not_raise(tmp_path):
    """The session folder replaced by a file mid-recording: tidying ffmpeg's log is best effort, and the
    writer thread must not end in a NotADirectoryError."""
    folder = tmp_path / "session"
    folder.mkdir()
    stream = VideoStream(folder / "out.mp4", 20.0)  # nothing written yet: close only tidies the log
    shutil.rmtree(folder)
    folder.write_text("a file where the session was")
    stream.close()
    assert stream.error is None
