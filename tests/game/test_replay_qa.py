"""A QA pass over replay and export in launch.py: a damaged session.json rate or engine.mp4, a --res the
model cannot take, the HUD of a recorded autopilot drive, and Ctrl+C/SIGTERM while the renderer starts.
Each ends in one line (or none) that names the real cause, never a traceback or ffmpeg's log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pygame = pytest.importorskip("pygame")

from game.startup.cli import parse_args  # noqa: E402
from game.startup.main import main  # noqa: E402
from game.app.signals import Terminated  # noqa: E402
from support.game import RES, headless_env, make_app, tiny_model_path  # noqa: E402,F401


def _model_flags(tiny_model_path) -> list[str]:
    return ["--model", str(tiny_model_path), "--backend", "torch", "--device", "cpu"]


@pytest.fixture
def recorded(make_app) -> Path:
    """Three ticks of a headless drive (the autopilot drives), recorded with engine.mp4."""
    assert make_app("--headless", "--frames", "3", "--record", "sessions").run() == 0
    (session,) = Path("sessions").iterdir()
    return session


@pytest.mark.parametrize("fps", ["fast", 0, -5])
def test_a_damaged_fps_is_one_line_at_export(recorded, tiny_model_path, capsys, fps):
    # It was a traceback (float('fast')) or "Broken pipe" with ffmpeg's raw lines and a leftover log.
    meta = json.loads((recorded / "session.json").read_text())
    (recorded / "session.json").write_text(json.dumps({**meta, "fps": fps}))
    capsys.readouterr()
    assert main(parse_args(["--replay", str(recorded), "--export", "out.mp4",
                            *_model_flags(tiny_model_path)])) == 2
    err = capsys.readouterr().err
    assert err == f"error: --replay {recorded / 'session.json'}: 'fps' must be a positive number, got {fps!r}\n"
    assert sorted(p.name for p in Path().iterdir()) == ["sessions"]  # no partial mp4, no ffmpeg log


def test_a_damaged_engine_mp4_still_exports(recorded, tiny_model_path, capsys):
    # It was "error: export failed: Could not load meta information" and ~17 lines of ffmpeg's log.
    (recorded / "engine.mp4").write_text("garbage\n")
    capsys.readouterr()
    assert main(parse_args(["--replay", str(recorded), "--export", "out.mp4",
                            *_model_flags(tiny_model_path)])) == 0
    captured = capsys.readouterr()
    (warning,) = [line for line in captured.err.splitlines() if "warning" in line]
    assert warning.endswith(f"{recorded / 'engine.mp4'} cannot be decoded (Could not load meta information); "
                            "the export goes on without the engine column")
    assert "stderr" not in captured.err and "exported: out.mp4" in captured.out
    assert Path("out.mp4").stat().st_size > 0


def test_replay_res_the_model_cannot_take_blames_res(recorded, tiny_model_path, capsys):
    # It blamed the session: "--replay S: size 60x36: ...; resample the session with --res".
    assert main(parse_args(["--headless", "--replay", str(recorded), "--frames", "3", "--res", "60x36",
                            *_model_flags(tiny_model_path)])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --res: size 60x36: ") and err.count("\n") == 1, err
    assert "--replay" not in err and "resample the session" not in err


def test_replay_hud_shows_the_recorded_autopilot(recorded, make_app):

    records = [json.loads(line) for line in (recorded / "frames.jsonl").read_text().splitlines()]
    assert records[-1]["autopilot"] is True
    app = make_app("--headless", "--source", "replay", "--replay", str(recorded))
    assert not app.keyboard.autopilot  # the keyboard drives nothing in a replay
    while app.tick():
        pass
    # The control bars came from the recording, the autopilot line from the idle keyboard: "off".
    assert app.frame.ego.control.autopilot and app.hud_lines(app.frame)[-1].startswith("autopilot on")


@pytest.mark.parametrize("interrupt, said", [
    (Terminated, "SIGTERM: stopped before the drive started"),
    (KeyboardInterrupt, "Ctrl+C: stopped before the drive started"),
])
@pytest.mark.parametrize("wrapped", ["onnxruntime", "numba"])
def test_an_interrupted_renderer_start_up_is_an_interruption(headless_env, monkeypatch, capsys,
                                                              interrupt, said, wrapped):
    """A signal that lands while an extension module initialises comes back wrapped: pybind11 raises
    ImportError('initialization failed') from it (onnxruntime, imported as the renderer starts); a
    class body's __set_name__, RuntimeError (numba). It was "error: --backend auto ...: initialization
    failed", exit status 2 (or a traceback, exit status 1)."""
    import game.startup.rendering

    def starting(*args, **kwargs):
        if wrapped == "onnxruntime":
            raise ImportError("initialization failed") from interrupt()
        try:
            raise interrupt()
        except KeyboardInterrupt:
            raise RuntimeError("Error calling __set_name__ on 'cached_property' instance") from None

    monkeypatch.setattr(game.startup.rendering, "Renderer", starting)
    assert main(parse_args(["--headless", "--source", "procedural", "--preset", "tiny", "--res", RES])) == 130
    assert capsys.readouterr().err.endswith(said + "\n")


def test_an_interrupted_import_during_an_export_says_the_export_stopped(recorded, tiny_model_path,
                                                                         monkeypatch, capsys):
    import game.startup.main

    def export_session(*args, **kwargs):
        raise RuntimeError("Error calling __set_name__") from KeyboardInterrupt()

    monkeypatch.setattr(game.startup.main, "export_session", export_session)
    assert main(parse_args(["--replay", str(recorded), "--export", "out.mp4",
                            *_model_flags(tiny_model_path)])) == 130
    assert capsys.readouterr().err == "Ctrl+C: the export stopped; nothing was exported\n"


def test_a_real_error_during_start_up_is_not_taken_for_an_interruption(headless_env, monkeypatch, capsys):
    import game.startup.rendering

    def broken(*args, **kwargs):
        raise ImportError("libonnxruntime.so: cannot open shared object file")

    monkeypatch.setattr(game.startup.rendering, "Renderer", broken)
    assert main(parse_args(["--headless", "--source", "procedural", "--preset", "tiny", "--res", RES])) == 2
    assert "error: --backend auto --device auto --precision fp32: libonnxruntime.so" in capsys.readouterr().err
