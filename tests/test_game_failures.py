"""A second QA pass over launch.py: a damaged session or an output that fails ends in one line and a
non-zero exit code, with everything already saved kept (the recording closed, a previous export as it
was), and a session records the seed its world really used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pygame = pytest.importorskip("pygame")

from carla_bridge.frames import Control  # noqa: E402
from carla_bridge.session import SessionRecorder  # noqa: E402
from carla_bridge.session.synthetic import synthetic_frame  # noqa: E402
from game.app import main  # noqa: E402
from game.cli import LaunchError, parse_args  # noqa: E402
from game_support import RES, headless_env, make_app, tiny_model_path  # noqa: E402,F401

SIZE = (64, 32)  # RES
FRAMES = 4


@pytest.fixture
def session(headless_env) -> Path:
    path = headless_env / "session"
    with SessionRecorder(path, {"source": "synthetic"}, size=SIZE, video=False) as rec:
        for i in range(FRAMES):
            rec.add(synthetic_frame(i, SIZE), Control(), None, {})
    return path


def _model_flags(tiny_model_path) -> list[str]:
    return ["--model", str(tiny_model_path), "--backend", "torch", "--device", "cpu"]


def test_a_frames_file_cut_short_is_warned_about_at_open(session, capsys):
    from game.sources import make_source

    lines = (session / "frames.jsonl").read_text().splitlines(keepends=True)
    (session / "frames.jsonl").write_text("".join(lines[:2]))
    make_source(parse_args(["--replay", str(session)]), (0, 0)).source.close()
    assert capsys.readouterr().err == (
        f"warning: --replay {session}: frames.jsonl holds 2 frames but session.json says the recording "
        f"closed with {FRAMES} (frames.jsonl was cut short since); replaying the 2\n")


def test_a_drive_without_seed_records_the_seed_its_world_used(headless_env, tiny_model_path):
    from game.app import App
    from game.status import session_meta

    argv = ["--headless", "--source", "procedural", "--res", RES, *_model_flags(tiny_model_path)]
    app = App(parse_args(argv))
    try:
        assert session_meta(app)["seed"] == 0  # was null: the drive could not be driven again
    finally:
        app.close()
