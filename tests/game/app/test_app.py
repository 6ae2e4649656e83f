"""The App (game.app.app) when something fails: a corrupt replay file, a failed screenshot or recording,
an interrupted teardown. Each ends in one line and a non-zero exit code where a script must not take
the run as done, with everything already saved kept; and a session records the seed its world used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pygame = pytest.importorskip("pygame")

from carla_bridge.core.frames import Control  # noqa: E402
from carla_bridge.session import SessionRecorder  # noqa: E402
from game.bench.workloads import synthetic_frame  # noqa: E402
from game.startup.cli import LaunchError, parse_args  # noqa: E402
from game.startup.main import main  # noqa: E402
from support.game import RES, headless_env, make_app, tiny_model_path  # noqa: E402,F401

SIZE = (64, 32)  # RES
FRAMES = 4


@pytest.fixture
def session(headless_env) -> Path:
    path = headless_env / "session"
    with SessionRecorder(path, {"source": "synthetic"}, size=SIZE, video=False) as rec:
        for i in range(FRAMES):
            rec.add(synthetic_frame(i, SIZE), Control(), None, {})
    return path


def _truncate(file: Path) -> None:
    with open(file, "r+b") as handle:
        handle.truncate(100)


def _model_flags(tiny_model_path) -> list[str]:
    return ["--model", str(tiny_model_path), "--backend", "torch", "--device", "cpu"]


def _error_line(err: str) -> str:
    """The one error line (an export's progress bar shares stderr); never a traceback."""
    assert "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if "error: " in line]
    return line


def test_a_corrupt_file_mid_replay_is_one_line_and_the_recording_is_closed(session, tiny_model_path, capsys):
    _truncate(session / "labels" / "000002.png")
    argv = ["--headless", "--replay", str(session), "--record", "rec", *_model_flags(tiny_model_path)]
    assert main(parse_args(argv)) == 2
    assert _error_line(capsys.readouterr().err) == f"launch.py: error: {session}/labels/000002.png: cannot be read: " \
                                                   "image file is truncated"
    (recording,) = Path("rec").iterdir()
    meta = json.loads((recording / "session.json").read_text())
    assert meta["closed"] is True and meta["frames"] == 2  # the two ticks played before it, kept


def test_a_failed_export_keeps_the_previous_one_and_says_where_it_stopped(session, tiny_model_path, capsys):
    _truncate(session / "labels" / "000002.png")
    Path("out.mp4").write_bytes(b"last week's export")
    argv = ["--replay", str(session), "--export", "out.mp4", "--overwrite", *_model_flags(tiny_model_path)]
    assert main(parse_args(argv)) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"launch.py: error: export failed: {session}/labels/000002.png: cannot be read: image file is truncated; "
        "the 2 frames exported before it are in out.partial.mp4; out.mp4 is as before")
    assert Path("out.mp4").read_bytes() == b"last week's export" and Path("out.partial.mp4").is_file()


def test_a_frames_file_cut_short_is_warned_about_at_open(session, capsys):
    from game.startup.sources import make_source

    lines = (session / "frames.jsonl").read_text().splitlines(keepends=True)
    (session / "frames.jsonl").write_text("".join(lines[:2]))
    make_source(parse_args(["--replay", str(session)]), (0, 0)).source.close()
    assert capsys.readouterr().err == (
        f"warning: --replay {session}: frames.jsonl holds 2 frames but session.json says the recording "
        f"closed with {FRAMES} (frames.jsonl was cut short since); replaying the 2\n")


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's /sys")
@pytest.mark.parametrize("flag, value", [
    ("--screenshot", "/sys/s.png"), ("--record", "/sys"), ("--report", "/sys"), ("--export", "/sys/x.mp4"),
    ("--export-frames", "/sys"),
])
def test_outputs_are_checked_by_writing_not_by_permission_bits(headless_env, flag, value):
    # os.access says yes to root for /sys: `--screenshot /sys/s.png` drove to the end, then failed.
    from game.startup.outputs import check_outputs

    argv = [flag, value, "--replay", "session"] if flag.startswith("--export") else [flag, value]
    with pytest.raises(LaunchError, match=rf"^{flag} {value}: .*is not writable"):
        check_outputs(parse_args(argv))


def test_a_screenshot_that_fails_at_teardown_is_a_failed_run(make_app, monkeypatch, capsys):
    import game.app.app

    def cannot_open(surface, path) -> None:
        raise pygame.error(f"Couldn't open {path}")

    monkeypatch.setattr(game.app.app, "save_screenshot", cannot_open)
    app = make_app("--headless", "--frames", "1", "--screenshot", "shot.png")
    assert app.run() == 1  # was 0: a script took the run as done
    assert "while closing (_save_screenshot): error: Couldn't open shot.png" in capsys.readouterr().err


def test_a_drive_without_seed_records_the_seed_its_world_used(headless_env, tiny_model_path):
    from game.app.app import App
    from neural_render.model import FORWARD_REVISION

    argv = ["--headless", "--source", "procedural", "--res", RES, *_model_flags(tiny_model_path)]
    app = App(parse_args(argv))
    try:
        assert app.session_meta()["seed"] == 0  # was null: the drive could not be driven again
        assert app.session_meta()["forward_revision"] == FORWARD_REVISION  # a replay can tell a changed network
    finally:
        app.close()


def test_a_headless_recording_that_fails_ends_the_run_as_failed(make_app, monkeypatch, capsys):
    """No one reads the notice of a headless run, so a recording that fails (a full disk) fails the
    run: otherwise a script would take the session cut short as recorded."""
    from carla_bridge.session import SessionRecorder

    real_add = SessionRecorder.add

    def add_then_fill_the_disk(self, *args, **kwargs):
        real_add(self, *args, **kwargs)
        if self.frames_queued >= 3:
            self._drive_error = "recording stopped at frame 3: the disk is full"

    monkeypatch.setattr(SessionRecorder, "add", add_then_fill_the_disk)
    app = make_app("--headless", "--frames", "50", "--record", "rec")
    assert app.run() == 1
    assert app.ticks == 3
    assert "the recording failed: recording stopped at frame 3: the disk is full" in capsys.readouterr().err
    (session,) = Path("rec").iterdir()
    assert json.loads((session / "session.json").read_text())["frames"] == 3


def test_record_rgb_without_record_in_a_headless_run_is_pointed_out(make_app, capsys):
    app = make_app("--headless", "--frames", "1", "--record-rgb")
    assert app.run() == 0
    assert "note: --record-rgb does nothing here: a headless run records only with --record DIR" in capsys.readouterr().out
    assert not Path("sessions").exists()


def test_a_headless_recording_that_cannot_start_renders_nothing(make_app, monkeypatch, capsys):
    from carla_bridge.session import SessionRecorder

    monkeypatch.setattr(SessionRecorder, "error", property(lambda self: "recording not started in rec: no space"))
    app = make_app("--headless", "--frames", "50", "--record", "rec")
    assert app.run() == 1
    assert app.ticks == 0  # it rendered one frame first
    assert "the recording failed: recording not started in rec: no space" in capsys.readouterr().err


def test_a_failed_recording_in_a_window_is_shown_there_not_in_the_exit_status(make_app, monkeypatch):
    app = make_app("--frames", "2")
    app.headless = False  # as in a window (SDL's dummy driver here): someone saw the notice
    app.recording.error = "recording not started in rec: no space"  # an R press that failed, then R again
    assert app.run() == 0 and app.ticks == 2


def test_a_sigterm_a_library_swallowed_during_start_up_still_ends_the_drive(make_app, capsys):
    """numba's compiler callbacks print "Exception ignored ... Terminated" and go on: the drive then ran
    all its frames, exit 0, as if no SIGTERM had come. Now it ends at once, with 130."""
    import signal

    import game.signals

    app = make_app("--headless", "--frames", "50")
    try:
        game.signals.raise_terminated(signal.SIGTERM, None)  # as the handler runs inside such a callback
    except KeyboardInterrupt:
        pass  # swallowed
    assert app.run() == 130 and app.ticks == 0  # stopped before its --frames: not a finished run
    assert "SIGTERM: closing" in capsys.readouterr().out
    assert not game.signals.TERMINATED_AT_START_UP


def test_a_size_memory_cannot_hold_is_a_one_line_launch_error(monkeypatch):
    import game.startup.rendering
    from game.startup.cli import LaunchError
    from game.startup.rendering import make_renderer

    def no_memory(*args, **kwargs):
        raise MemoryError("size 16384x8192: not enough memory to render at this size (...); use a smaller size")

    monkeypatch.setattr(game.startup.rendering, "Renderer", no_memory)
    with pytest.raises(LaunchError, match="not enough memory.*use a smaller size"):  # a launch error, not a traceback
        make_renderer(None, "torch", "cpu", "fp32", (16384, 8192))


@pytest.mark.parametrize("presses, code", [(1, 0), (2, 130)])
def test_ctrl_c_while_closing_finishes_the_teardown(make_app, capfd, presses, code):
    import os
    import signal
    import time

    closed = []

    class Recorder:  # finalizing takes a while; Ctrl+C is pressed again meanwhile
        error, frames_written, frames_queued, path = None, 1, 1, Path("sessions/x")
        meta: dict = {}

        def add(self, *args, **kwargs) -> None: ...

        def close(self) -> None:
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler runs here
            closed.append("recording")

    app = make_app("--headless", "--frames", "1")
    app.recording.recorder = Recorder()
    source_close = app.source.close
    app.source.close = lambda: (closed.append("source"), source_close())
    assert app.run() == code
    err = capfd.readouterr().err
    if presses == 1:  # one more Ctrl+C only says what is being finished; the teardown goes on
        assert closed == ["recording", "source"] and "still closing" in err
    else:
        assert "teardown abandoned" in err


def test_a_recording_that_cannot_start_is_closed_at_once(make_app, monkeypatch):
    """A recorder refused at the R key is closed there, not left with its writer running until exit."""
    from carla_bridge.session import SessionRecorder

    closed = []
    real_close = SessionRecorder.close
    monkeypatch.setattr(SessionRecorder, "error", property(lambda self: "recording not started in rec: no space"))
    monkeypatch.setattr(SessionRecorder, "close", lambda self: closed.append(self) or real_close(self))
    app = make_app("--headless", "--frames", "50", "--record", "rec")
    assert app.run() == 1
    assert len(closed) == 1 and closed[0]._closed
