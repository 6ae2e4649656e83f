"""The drive's recording (game.app.recording): R starts and stops without freezing the drive, a headless
run waits for the writer, a recording damaged at its close is said, an empty one leaves nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pygame = pytest.importorskip("pygame")

from support.game import headless_env, make_app, post_key, tiny_model_path  # noqa: E402,F401 (fixtures)

DISK_FULL = ("session.json could not be updated at close: the disk is full: free some space or record to "
             "another disk; frames.jsonl still holds every complete frame")


class _DamagedAtClose:
    """A real recorder whose close fails the way a disk that filled up meanwhile makes it fail (the
    videos and session.json are finalized there): error is set only once closed."""

    def __init__(self, recorder) -> None:
        self._recorder, self._closed = recorder, False

    def __getattr__(self, name):
        return getattr(self._recorder, name)

    def close(self) -> None:
        self._recorder.close()
        self._closed = True

    @property
    def error(self):
        return DISK_FULL if self._closed else None


def test_r_stops_a_recording_without_freezing_the_drive(make_app):
    from support.game import post_key

    class SlowRecorder:  # finalizing a real one waits for the writer and ffmpeg (0.5-0.7 s)
        error, frames_written, frames_queued, path = None, 3, 3, Path("sessions/x")
        meta: dict = {}

        def __init__(self) -> None:
            self.release, self.closed = threading.Event(), False

        def add(self, *args, **kwargs) -> None: ...

        def close(self) -> None:
            assert self.release.wait(30)
            self.closed = True

    app = make_app("--headless")
    app.recording.recorder = recorder = SlowRecorder()
    post_key(pygame.K_r)
    assert app.tick() and app.recording.recorder is None  # the tick came back while the close still waits
    assert not recorder.closed
    recorder.release.set()
    app.close()  # joins the finishing close: nothing cut off at exit
    assert recorder.closed


def test_headless_recording_waits_for_the_writer(make_app):
    from game.app.recording import HEADLESS_BACKLOG_FRAMES

    class SlowDisk:  # the writer drains one frame per poll of frames_written
        error, path = None, Path("sessions/x")

        def __init__(self) -> None:
            self.frames_queued, self.written = 0, 0

        @property
        def frames_written(self) -> int:
            self.written = min(self.written + 1, self.frames_queued)
            return self.written

        def add(self, *args, **kwargs) -> None:
            self.frames_queued += 40  # a burst: far more than the writer has taken

        def close(self) -> None: ...

    app = make_app("--headless")
    app.recording.recorder = disk = SlowDisk()
    assert app.tick()
    # The tick comes back only once the backlog is down to the limit: a headless drive waits for the
    # writer rather than outrun it until the recorder gives up ("the writer fell 8 MB behind").
    assert disk.frames_queued - disk.written == HEADLESS_BACKLOG_FRAMES


def test_a_recording_damaged_at_exit_fails_the_headless_run(make_app, capsys):
    app = make_app("--headless", "--record", "rec", "--frames", "3")
    app.recording.recorder = _DamagedAtClose(app.recording.recorder)
    assert app.run() == 1  # not "recorded 3 frames" and exit 0
    err = capsys.readouterr().err
    assert "with an error" in err and "disk is full" in err


def test_a_recording_damaged_when_r_stops_it_is_said_in_the_window(make_app, capsys):
    app = make_app("--headless")
    post_key(pygame.K_r)
    assert app.tick() and app.tick()
    app.recording.recorder = _DamagedAtClose(app.recording.recorder)
    post_key(pygame.K_r)
    assert app.tick()
    for thread in app.recording.finishing:
        thread.join()
    assert "recording damaged" in app.hud.notice.text and "disk is full" in app.hud.notice.text
    assert app.recording.error == DISK_FULL
    assert "with an error" in capsys.readouterr().err


def test_r_twice_within_one_tick_leaves_no_empty_session(make_app, headless_env):
    app = make_app("--headless")
    post_key(pygame.K_r)
    post_key(pygame.K_r)
    assert app.tick()
    assert app.recording.recorder is None and "cancelled" in app.hud.notice.text
    assert not (headless_env / "sessions").exists()  # no 0-frame session left behind: replay refuses one
    post_key(pygame.K_r)
    assert app.tick()
    post_key(pygame.K_r)
    assert app.tick()
    for thread in app.recording.finishing:
        thread.join()
    (session,) = (headless_env / "sessions").iterdir()
    assert (session / "frames.jsonl").read_text().count("\n") == 1  # one tick recorded: kept


def test_r_then_esc_within_one_tick_leaves_no_empty_session(make_app, headless_env):
    app = make_app("--headless")
    post_key(pygame.K_r)
    post_key(pygame.K_ESCAPE)
    assert app.run() == 0
    assert not (headless_env / "sessions").exists()  # the close kept the 0-frame session


def test_a_full_disk_stops_the_recording_and_the_drive_goes_on(make_app, monkeypatch, capsys):
    """Someone watches a window: the drive goes on, the HUD and the log say the recording stopped and why,
    and the session is closed saying so (a headless run ends instead: test_app's failed-recording test)."""
    import json

    from support.disk import fill_disk_at_frame

    app = make_app()
    app.headless = app.recording.headless = False  # as in a window: SDL's dummy driver made it headless
    fill_disk_at_frame(monkeypatch, 2)
    post_key(pygame.K_r)
    for _ in range(40):
        assert app.tick()
        if app.recording.recorder is None:
            break
    assert app.recording.recorder is None, "the recording never stopped"
    assert app.tick() and app.tick()  # the drive goes on
    assert app.hud.notice.text.startswith("recording stopped: disk full after 2 frames")
    assert "recording stopped: disk full after 2 frames" in capsys.readouterr().out
    (session,) = Path("sessions").iterdir()
    meta = json.loads((session / "session.json").read_text())
    assert meta["closed"] is True and meta["ended_by"] == "disk full" and meta["frames"] == 2


def test_a_live_port_in_use_is_a_launch_error_naming_the_flag():
    from carla_bridge.session.live import LiveView
    from game.app.recording import start_live
    from game.startup.cli import LaunchError

    taken = LiveView(port=0)
    try:
        with pytest.raises(LaunchError, match=f"--live-port {taken.port}: cannot serve on 127.0.0.1"):
            start_live("foxglove", taken.port)
    finally:
        taken.close()
    assert start_live(None, 8765) is None
