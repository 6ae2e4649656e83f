"""One launch (game.startup.main): Ctrl+C or SIGTERM before the drive, a damaged session at export, an
interrupted renderer start-up: each ends in one line (or none) that names the real cause."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

pygame = pytest.importorskip("pygame")

from game.signals import Terminated  # noqa: E402
from game.startup.cli import parse_args  # noqa: E402
from game.startup.main import main  # noqa: E402
from support.game import (RES, headless_env, make_app, model_flags, one_line_error,  # noqa: E402,F401 (fixtures)
                          recorded, tiny_model_path)


@pytest.mark.parametrize("flags, said", [
    ([], "Ctrl+C: stopped before the drive started"),
    (["--replay", "session", "--export", "out.mp4"], "Ctrl+C: the export stopped"),
])
def test_ctrl_c_before_the_drive_is_one_line(headless_env, monkeypatch, capsys, flags, said):
    import game.app.app
    import game.startup.main

    def interrupted(config):
        raise KeyboardInterrupt  # where a real Ctrl+C lands: importing torch, loading the model, exporting

    monkeypatch.setattr(game.app.app, "load_model", interrupted)  # the drive's
    monkeypatch.setattr(game.startup.main, "load_model", interrupted)  # the export's
    assert main(parse_args(["--headless", *flags])) == 130
    err = capsys.readouterr().err
    assert err == said + ("; nothing was exported" if "export" in said else "") + "\n"


def test_a_failed_carla_start_leaves_no_empty_record_folder(headless_env, tiny_model_path, capsys):
    pytest.importorskip("carla", reason="CarlaSource fails the start; the carla client is not installed")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    record = headless_env / "recordings" / "carla"
    argv = ["--headless", "--res", RES, "--model", str(tiny_model_path), "--source", "carla", "--port", str(port),
            "--record", str(record)]
    assert main(parse_args(argv)) == 2
    one_line_error(capsys, "no CARLA server answers")
    assert not (headless_env / "recordings").exists()  # both folders made for the drive are gone again


def test_sigterm_during_start_up_closes_the_open_source(headless_env, monkeypatch, capsys):
    import os
    import signal
    import time

    import game.app.app

    closed = []

    class Source:  # stands for a CarlaSource just switched to synchronous mode
        size = (64, 32)

        def reset(self, seed=None):
            os.kill(os.getpid(), signal.SIGTERM)  # killed while the renderer would be built
            time.sleep(5)

        def close(self) -> None:
            closed.append(True)

    from game.startup.sources import SourceChoice

    monkeypatch.setattr(game.app.app, "make_source", lambda config, size: SourceChoice(Source(), "carla", "x"))
    started = time.monotonic()
    assert main(parse_args(["--headless", "--source", "procedural", "--preset", "tiny", "--res", RES])) == 130
    assert time.monotonic() - started < 5 and closed == [True]
    assert capsys.readouterr().err.endswith("SIGTERM: stopped before the drive started\n")


def test_a_recording_cancelled_before_its_first_frame_leaves_no_record_folder(headless_env, tiny_model_path,
                                                                              monkeypatch, tmp_path):
    """Ctrl+C before the first frame removes the --record DIR the run made, with its empty session folder;
    a DIR that was there before stays."""
    from game.app.app import App

    def interrupted(app, frame, times):  # Ctrl+C inside the first render, before any frame is recorded
        raise KeyboardInterrupt

    monkeypatch.setattr(App, "_render", interrupted)
    record, kept = tmp_path / "new" / "sessions", tmp_path / "kept"
    kept.mkdir()
    for folder in (record, kept):
        argv = ["--headless", "--source", "procedural", "--model", str(tiny_model_path), "--res", RES,
                "--backend", "torch", "--record", str(folder)]
        assert main(parse_args(argv)) == 0  # an open-ended drive stopped by Ctrl+C ends normally
    assert not (tmp_path / "new").exists()  # made by this run and still empty: removed
    assert kept.is_dir() and not any(kept.iterdir())  # there before the run: left alone


@pytest.mark.parametrize("fps", ["fast", 0, -5])
def test_a_damaged_fps_is_one_line_at_export(recorded, tiny_model_path, capsys, fps):
    # One line, not a traceback (float('fast')) or "Broken pipe" with ffmpeg's raw lines and a leftover log.
    meta = json.loads((recorded / "session.json").read_text())
    (recorded / "session.json").write_text(json.dumps({**meta, "fps": fps}))
    capsys.readouterr()
    assert main(parse_args(["--replay", str(recorded), "--export", "out.mp4",
                            *model_flags(tiny_model_path)])) == 2
    err = capsys.readouterr().err
    assert err == f"launch.py: error: --replay {recorded / 'session.json'}: 'fps' must be a positive number, got {fps!r}\n"
    assert sorted(p.name for p in Path().iterdir()) == ["sessions"]  # no partial mp4, no ffmpeg log


def test_a_damaged_engine_mp4_still_exports(recorded, tiny_model_path, capsys):
    # It was "error: export failed: Could not load meta information" and ~17 lines of ffmpeg's log.
    (recorded / "engine.mp4").write_text("garbage\n")
    capsys.readouterr()
    assert main(parse_args(["--replay", str(recorded), "--export", "out.mp4",
                            *model_flags(tiny_model_path)])) == 0
    captured = capsys.readouterr()
    (warning,) = [line for line in captured.err.splitlines() if "warning" in line]
    assert warning.endswith(f"{recorded / 'engine.mp4'} cannot be decoded (Could not load meta information); "
                            "the export goes on without the engine column")
    assert "stderr" not in captured.err and "exported: out.mp4" in captured.out
    assert Path("out.mp4").stat().st_size > 0


def test_replay_res_the_model_cannot_take_blames_res(recorded, tiny_model_path, capsys):
    # It blamed the session: "--replay S: size 60x36: ...; resample the session with --res".
    assert main(parse_args(["--headless", "--replay", str(recorded), "--frames", "3", "--res", "60x36",
                            *model_flags(tiny_model_path)])) == 2
    err = capsys.readouterr().err
    assert err.startswith("launch.py: error: --res: size 60x36: ") and err.count("\n") == 1, err
    assert "--replay" not in err and "resample the session" not in err


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
                            *model_flags(tiny_model_path)])) == 130
    assert capsys.readouterr().err == "Ctrl+C: the export stopped; nothing was exported\n"


def test_a_real_error_during_start_up_is_not_taken_for_an_interruption(headless_env, monkeypatch, capsys):
    import game.startup.rendering

    def broken(*args, **kwargs):
        raise ImportError("libonnxruntime.so: cannot open shared object file")

    monkeypatch.setattr(game.startup.rendering, "Renderer", broken)
    assert main(parse_args(["--headless", "--source", "procedural", "--preset", "tiny", "--res", RES])) == 2
    assert "launch.py: error: --backend auto --device auto --precision fp32: libonnxruntime.so" in capsys.readouterr().err
