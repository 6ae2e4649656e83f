"""Headless runs of the whole game on the real procedural world and the real Renderer (tiny model,
64x32): frames complete, the screenshot shows the panes, threaded mode, untrained fallback, bad
--model, recording then replaying, profiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pygame = pytest.importorskip("pygame")

from carla_bridge.core.labels import colorize  # noqa: E402
from game.app.app import App  # noqa: E402
from game.startup.cli import RETRAIN_COMMAND, parse_args, retrain_command  # noqa: E402
from game.startup.main import main  # noqa: E402
from support.game import (RES, WINDOW, headless_env, load_png, make_app, post_key, tiny_model_path,  # noqa: E402,F401
                          upscale)


def _top_half(image: np.ndarray, rect) -> np.ndarray:
    x, y, w, h = rect
    return image[y:y + h // 2, x:x + w]


def test_headless_run_writes_a_screenshot_of_both_panes(make_app, headless_env):
    app = make_app("--headless", "--frames", "6", "--screenshot", "shot.png")
    assert app.headless and app.keyboard.autopilot and app.draw
    assert app.size == (64, 32) and app.source_name == "procedural"
    post_key(pygame.K_F1)  # HUD off, so nothing but panes in their top halves (notifications sit low)
    assert app.run() == 0
    assert app.ticks == 6 and app.frame.index >= 5

    shot = load_png(headless_env / "shot.png")
    assert shot.shape == (128, 384, 3)
    rects = app.rects
    assert set(rects) == {"labels", "render", "engine"} and all(r[2:] == (128, 64) for r in rects.values())
    labels_pane, render_pane = _top_half(shot, rects["labels"]), _top_half(shot, rects["render"])
    # Each pane is exactly its image scaled 2x: the label map in the CityScapes palette, the neural frame.
    np.testing.assert_array_equal(labels_pane, _top_half(upscale(colorize(app.frame.labels), 2), (0, 0, 128, 64)))
    np.testing.assert_array_equal(render_pane, _top_half(upscale(app.rendered, 2), (0, 0, 128, 64)))
    for pane in (labels_pane, render_pane):  # not blank
        assert pane.std() > 2.0
    assert np.abs(labels_pane.astype(int) - render_pane.astype(int)).mean() > 10  # the panes differ
    assert len(np.unique(app.frame.labels)) >= 3  # the world shows several classes


def test_threaded_mode_overlaps_and_completes(make_app):
    app = make_app("--headless", "--frames", "5", "--threaded")
    assert app.pool is not None
    assert app.run() == 0
    assert app.ticks == 5 and app.frame.index >= 4
    assert app.timings["source"] > 0 and app.timings["render"] > 0


def test_default_model_missing_falls_back_to_untrained(headless_env, monkeypatch, capsys):
    import neural_render.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "DEFAULT_MODEL_PATH", headless_env / "models" / "none.safetensors")
    app = App(parse_args(["--headless", "--frames", "2", "--source", "procedural", "--preset", "tiny",
                          "--res", RES, "--window", WINDOW, "--backend", "torch", "--device", "cpu"]))
    assert app.model.untrained and app.model.preset == "tiny"
    assert app.run() == 0
    err = capsys.readouterr().err
    # The retrain command is the one for this preset, not the cpu preset's.
    assert "UNTRAINED" in err and retrain_command("tiny") in err and "--preset cpu" not in err


@pytest.mark.parametrize("content", [None, b"not a safetensors file"])
def test_shipped_model_missing_or_corrupt_is_a_clear_error(headless_env, monkeypatch, capsys, content):
    import neural_render.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "MODELS_DIR", headless_env / "models")
    (headless_env / "models").mkdir(exist_ok=True)
    if content is not None:
        (headless_env / "models" / "cpu.safetensors").write_bytes(content)
    code = main(parse_args(["--headless", "--frames", "1", "--source", "procedural", "--res", RES]))
    assert code == 2
    err = capsys.readouterr().err
    assert "cpu.safetensors" in err and RETRAIN_COMMAND in err


@pytest.mark.parametrize("content", [None, b"not a safetensors file"])
def test_bad_model_path_is_a_clear_error(headless_env, capsys, content):
    path = headless_env / "broken.safetensors"
    if content is not None:
        path.write_bytes(content)
    code = main(parse_args(["--headless", "--frames", "1", "--source", "procedural", "--model", str(path)]))
    assert code == 2
    err = capsys.readouterr().err
    # A missing file gets the train command; a damaged one the checkpoint's own advice, said once.
    advice = RETRAIN_COMMAND if content is None else "corrupt or truncated: copy or re-train it"
    assert "--model" in err and str(path) in err and advice in err and err.count("neural_render.train") == 1
    assert err.count("\n") == 1  # one line: the retrain command is on it, not on lines of its own


def test_resolution_the_model_cannot_take_names_res(headless_env, tiny_model_path, capsys):
    code = main(parse_args(["--headless", "--frames", "1", "--source", "procedural", "--res", "100x50",
                            "--model", str(tiny_model_path)]))
    assert code == 2 and "--res: size 100x50" in capsys.readouterr().err


def test_record_then_replay_ends_cleanly(make_app, headless_env):
    app = make_app("--headless", "--frames", "5", "--record", "sessions")
    assert app.recording.recorder is not None
    assert app.run() == 0
    assert app.recording.recorder is None  # finalized at exit
    sessions = sorted(Path("sessions").iterdir())
    assert len(sessions) == 1 and (sessions[0] / "session.json").exists()

    replay = make_app("--headless", "--source", "replay", "--replay", str(sessions[0]), "--screenshot", "replay.png",
                      "--profile", "--report", "replayed")
    assert replay.source_name == "replay" and replay.size == (64, 32)
    assert not replay.keyboard.autopilot  # controls come from the recording
    assert replay.run() == 0  # stops at SessionEnded without --frames
    assert replay.ticks == 5 and (headless_env / "replay.png").exists()
    import json

    report = json.loads((headless_env / "replayed" / "report.json").read_text())
    assert report["meta"]["replay"] == str(sessions[0])  # which session the figures are of


def test_profile_writes_a_report(make_app, headless_env):
    app = make_app("--headless", "--frames", "12", "--profile", "--report", "report")
    assert app.profiler.enabled
    assert app.run() == 0
    assert (headless_env / "report" / "report.json").exists()


def test_export_renders_a_recorded_session(make_app, headless_env, tiny_model_path):
    app = make_app("--headless", "--frames", "4", "--record", "sessions")
    app.run()
    (session,) = Path("sessions").iterdir()
    code = main(parse_args(["--replay", str(session), "--export", "out.mp4", "--export-frames", "frames",
                            "--model", str(tiny_model_path), "--backend", "torch", "--device", "cpu"]))
    assert code == 0
    assert (headless_env / "out.mp4").stat().st_size > 0 and len(list(Path("frames").glob("*.png"))) == 4
    # Three 64x32 panes under a 14 px caption are 192x46: exported 1280 wide, in proportion, even sides.
    assert load_png(Path("frames") / "000000.png").shape == (306, 1280, 3)
    code = main(parse_args(["--replay", str(session), "--export-frames", "small", "--export-size", "384x400",
                            "--model", str(tiny_model_path), "--backend", "torch", "--device", "cpu"]))
    assert code == 0 and load_png(Path("small") / "000000.png").shape == (92, 384, 3)  # 2x: the box's width


def test_profile_backend_all_compares_backends(headless_env, tiny_model_path):
    code = main(parse_args(["--profile", "--backend", "all", "--model", str(tiny_model_path), "--res", RES,
                            "--frames", "4", "--device", "cpu", "--report", "compare"]))
    assert code == 0 and (headless_env / "compare" / "comparison.json").exists()
    import json

    rows = json.loads((headless_env / "compare" / "comparison.json").read_text())["rows"]
    # Half the frames warm up at most (the profiler's 10 left `--frames 4` with 1 measured frame)
    assert rows and all(row["frames"] == 2 for row in rows if row["error"] is None)


def test_backend_all_keeps_a_previous_comparison_and_defaults_its_report_folder(headless_env, tiny_model_path,
                                                                                 capsys):
    args = ["--profile", "--backend", "all", "--model", str(tiny_model_path), "--res", RES, "--frames", "4",
            "--device", "cpu"]
    assert main(parse_args(args)) == 0  # no --report: reports/<timestamp>, as --help says
    (stamped,) = (headless_env / "reports").iterdir()
    saved = (stamped / "comparison.json").read_text()
    assert f"report: {stamped.relative_to(headless_env)}" in capsys.readouterr().out
    # The same --report again is refused without --overwrite; comparison.json stays as it was.
    assert main(parse_args([*args, "--report", str(stamped)])) == 2
    assert "--overwrite" in capsys.readouterr().err and (stamped / "comparison.json").read_text() == saved


def test_backend_all_refuses_the_flags_it_cannot_honour(headless_env, tiny_model_path, capsys):
    code = main(parse_args(["--profile", "--backend", "all", "--model", str(tiny_model_path), "--res", RES,
                            "--frames", "4", "--record", "sessions", "--threaded"]))
    assert code == 2 and "--record, --threaded do not apply" in capsys.readouterr().err
    assert not (headless_env / "sessions").exists()  # a refused run makes no folder


def test_a_short_profile_still_measures_frames(make_app, headless_env):
    app = make_app("--headless", "--frames", "3", "--profile", "--report", "short")
    assert app.run() == 0
    import json

    report = json.loads((headless_env / "short" / "report.json").read_text())
    assert report["frames"]["measured"] == 2 and report["frames"]["warmup_skipped"] == 1  # was 0 and 3


def test_a_lost_source_ends_the_drive_and_the_session_says_why(make_app, headless_env):
    from carla_bridge.core.frames import SourceLost

    app = make_app("--headless", "--frames", "50", "--record", "sessions")
    real_step, calls = app.source.step, []

    def step(control):
        calls.append(control)
        if len(calls) > 3:
            raise SourceLost("the CARLA server at 127.0.0.1:2000 stopped answering")
        return real_step(control)

    app.source.step = step
    assert app.run() == 1
    import json

    (session,) = Path("sessions").iterdir()
    meta = json.loads((session / "session.json").read_text())
    # the recording itself is whole: the first frame (from reset) and the three steps before the loss
    assert meta["closed"] and meta["error"] is None and meta["frames"] == 4
    assert meta["ended_by"] == "source lost: the CARLA server at 127.0.0.1:2000 stopped answering"


def test_a_profile_stopped_before_its_frames_says_so_and_fails(make_app, headless_env):
    """SIGTERM (a CI timeout) after 3 of 50 --frames fails the run, and the report says it was cut
    short, so it does not read as done."""
    import json
    import signal

    app = make_app("--headless", "--frames", "50", "--profile", "--report", "cut")
    for _ in range(3):
        assert app.tick()
    app.stop.requested = signal.SIGTERM  # as the handler sets it
    assert app.run() == 130
    run = json.loads((headless_env / "cut" / "report.json").read_text())["run"]
    assert run == {"frames_requested": 50, "ended_by": "SIGTERM", "cut_short": True}


def test_backend_all_fails_when_no_backend_could_be_measured(headless_env, tiny_model_path, monkeypatch, capsys):
    import game.profiler.compare

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel image for this GPU")

    monkeypatch.setattr(game.profiler.compare, "_run_backend", broken)
    code = main(parse_args(["--profile", "--backend", "all", "--model", str(tiny_model_path), "--res", RES,
                            "--frames", "4", "--device", "cpu", "--report", "none"]))
    assert code == 1 and "no backend could be measured" in capsys.readouterr().err  # was exit 0


def test_backend_all_names_the_report_a_full_disk_stopped(headless_env, tiny_model_path, monkeypatch, capsys):
    import errno

    import game.profiler.compare

    def full(path, text):
        raise OSError(errno.ENOSPC, f"cannot write {path} (No space left on device)")

    monkeypatch.setattr(game.profiler.compare, "write_text_safely", full)
    code = main(parse_args(["--profile", "--backend", "all", "--model", str(tiny_model_path), "--res", RES,
                            "--frames", "4", "--device", "cpu", "--report", "disk"]))
    err = capsys.readouterr().err
    assert code == 2 and "--report disk" in err and "No space left" in err and "Traceback" not in err


@pytest.mark.parametrize("step, banner", [(3, True), (6002, False), (None, False)])
def test_a_barely_trained_checkpoint_is_said_like_an_untrained_one(headless_env, capsys, step, banner):
    """A run saved after a few steps rendered noise under its own name, with no word of warning."""
    import torch

    from neural_render.checkpoint import save_generator
    from neural_render.model import build_generator

    torch.manual_seed(0)
    path = save_generator(build_generator("tiny").eval(), headless_env / "run.safetensors",
                          meta={} if step is None else {"step": step})
    app = App(parse_args(["--source", "procedural", "--model", str(path), "--res", RES, "--window", WINDOW,
                          "--backend", "torch", "--device", "cpu", "--headless", "--frames", "1"]))
    try:
        text = app.model.banner()
        assert (text is not None and f"{step} training steps" in text) == banner
        assert ("a barely trained network's output" in capsys.readouterr().err) == banner
        assert app.run() == 0
    finally:
        app.close()


def test_a_second_ctrl_c_in_a_profiled_run_also_exits_130(make_app, headless_env, monkeypatch):
    """The first Ctrl+C asks to stop; a second one raises KeyboardInterrupt inside the tick. That path
    exited 0 while report.json said cut short."""
    import json
    import signal

    from game.app.app import App

    app = make_app("--headless", "--frames", "50", "--profile", "--report", "twice")
    real_tick, ticks = App.tick, []

    def tick_then_interrupt(app):
        ticks.append(1)
        if len(ticks) == 3:
            app.stop.requested = signal.SIGINT  # the handler, on the first Ctrl+C ...
            raise KeyboardInterrupt  # ... and the second
        return real_tick(app)

    monkeypatch.setattr(App, "tick", tick_then_interrupt)
    assert app.run() == 130
    run = json.loads((headless_env / "twice" / "report.json").read_text())["run"]
    assert run == {"frames_requested": 50, "ended_by": "Ctrl+C", "cut_short": True}


def test_a_replay_shorter_than_its_frames_is_done_not_cut_short(make_app, headless_env):
    import json

    assert make_app("--headless", "--frames", "5", "--record", "sessions").run() == 0
    (session,) = Path("sessions").iterdir()
    replay = make_app("--headless", "--source", "replay", "--replay", str(session), "--frames", "100", "--profile",
                      "--report", "short")
    assert replay.run() == 0
    run = json.loads((headless_env / "short" / "report.json").read_text())["run"]
    assert run == {"frames_requested": 5, "ended_by": None, "cut_short": False}  # said "cut short after 5 of 100"
