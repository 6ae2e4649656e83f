"""Up-front checks of the paths a run writes (game.startup.outputs): a bad or taken output is one line
naming its flag, found before the drive."""

from __future__ import annotations

import os

import pytest

pygame = pytest.importorskip("pygame")

from game.startup.cli import parse_args  # noqa: E402
from game.startup.main import main  # noqa: E402
from support.game import RES, headless_env, one_line_error  # noqa: E402,F401 (fixtures)


@pytest.mark.parametrize("flag, value", [
    ("--record", "blocker/sessions"),  # drove on without recording
    ("--report", "blocker/report"),  # failed at teardown, after the whole profiled run
    ("--screenshot", "blocker/shot.png"),  # failed at teardown
    ("--export-frames", "blocker/frames"),  # traceback
])
def test_unwritable_output_fails_before_the_drive(headless_env, capsys, flag, value):
    (headless_env / "blocker").write_text("a file where a folder should be")
    argv = ["--headless", "--res", RES, flag, value]
    argv += ["--replay", "somewhere"] if flag == "--export-frames" else ["--source", "procedural", "--frames", "1"]
    assert main(parse_args(argv)) == 2
    one_line_error(capsys, flag, value)


def test_export_over_the_replayed_session_is_refused(headless_env, capsys):
    session = headless_env / "session"
    session.mkdir()
    (session / "render.mp4").write_bytes(b"recorded video")
    assert main(parse_args(["--replay", str(session), "--export", str(session / "render.mp4")])) == 2
    one_line_error(capsys, "--export", "inside the replayed session")
    assert (session / "render.mp4").read_bytes() == b"recorded video"


def test_a_recording_into_the_replayed_session_is_refused(headless_env, capsys):
    session = headless_env / "session"
    session.mkdir()
    assert main(parse_args(["--headless", "--replay", str(session), "--record", str(session)])) == 2
    one_line_error(capsys, "--record", "inside the replayed session")  # it nested a new session in it
    assert list(session.iterdir()) == []


@pytest.mark.parametrize("flag, target, previous", [
    ("--export", "out.mp4", "out.mp4"),
    ("--export-frames", "frames", "frames/000000.png"),
    ("--screenshot", "shot.png", "shot.png"),
    ("--report", "report", "report/report.json"),
])
def test_a_previous_result_is_kept_unless_overwrite(headless_env, capsys, flag, target, previous):
    from game.startup.outputs import check_outputs

    saved = headless_env / previous
    saved.parent.mkdir(exist_ok=True)
    saved.write_bytes(b"last week's result")
    argv = [flag, str(headless_env / target)]
    argv += ["--replay", str(headless_env / "session")] if flag.startswith("--export") else []
    assert main(parse_args(argv)) == 2
    one_line_error(capsys, flag, "a previous result", "--overwrite")
    assert saved.read_bytes() == b"last week's result"
    check_outputs(parse_args([*argv, "--overwrite"]))  # consent given: no error


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_a_pipe_as_screenshot_is_refused_before_the_drive(headless_env, capsys):
    """It failed only at the end, "Couldn't open", after the whole drive."""
    pipe = headless_env / "shot.png"
    os.mkfifo(pipe)
    assert main(parse_args(["--screenshot", str(pipe), "--overwrite", "--frames", "2"])) == 2
    one_line_error(capsys, "--screenshot", "not a regular file")


def test_profile_default_report_folder_is_checked_up_front(headless_env, capsys):
    (headless_env / "reports").write_text("a file where reports/<timestamp>/ would go")
    assert main(parse_args(["--headless", "--frames", "1", "--source", "procedural", "--profile"])) == 2
    one_line_error(capsys, "--profile reports", "pass --report DIR")
