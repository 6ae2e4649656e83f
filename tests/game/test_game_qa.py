"""Bugs found in a QA pass over launch.py, one test each: every user error is one line naming the flag
and what to do, found before the drive (nothing lost at exit), and Ctrl+C or a wrong server never
ends in a traceback or an abort."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

pygame = pytest.importorskip("pygame")

from game.startup.cli import LaunchError, parse_args  # noqa: E402
from game.startup.main import main  # noqa: E402
from support.game import RES, headless_env, make_app, tiny_model_path  # noqa: E402,F401


def _one_line_error(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    assert "ticks" not in captured.out  # nothing ran
    return err


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
    _one_line_error(capsys, flag, value)


def test_export_over_the_replayed_session_is_refused(headless_env, capsys):
    session = headless_env / "session"
    session.mkdir()
    (session / "render.mp4").write_bytes(b"recorded video")
    assert main(parse_args(["--replay", str(session), "--export", str(session / "render.mp4")])) == 2
    _one_line_error(capsys, "--export", "inside the replayed session")
    assert (session / "render.mp4").read_bytes() == b"recorded video"


def test_a_recording_into_the_replayed_session_is_refused(headless_env, capsys):
    session = headless_env / "session"
    session.mkdir()
    assert main(parse_args(["--headless", "--replay", str(session), "--record", str(session)])) == 2
    _one_line_error(capsys, "--record", "inside the replayed session")  # it nested a new session in it
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
    _one_line_error(capsys, flag, "a previous result", "--overwrite")
    assert saved.read_bytes() == b"last week's result"
    check_outputs(parse_args([*argv, "--overwrite"]))  # consent given: no error


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_a_pipe_as_screenshot_is_refused_before_the_drive(headless_env, capsys):
    """It failed only at the end, "Couldn't open", after the whole drive."""
    pipe = headless_env / "shot.png"
    os.mkfifo(pipe)
    assert main(parse_args(["--screenshot", str(pipe), "--overwrite", "--frames", "2"])) == 2
    _one_line_error(capsys, "--screenshot", "not a regular file")


def test_cuda_asked_for_without_cuda_is_an_error(monkeypatch):
    import torch

    from game.startup.rendering import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LaunchError, match=r"--device cuda:1: torch sees no CUDA GPU"):
        resolve_device(parse_args(["--device", "cuda:1"]))
    assert resolve_device(parse_args(["--device", "cpu"])) == "cpu"
    assert resolve_device(parse_args([])) == "cpu"  # auto still falls back quietly


def test_model_folder_and_preset_mismatch(tmp_path, tiny_model_path):
    from game.startup.rendering import load_model

    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    (run / "generator.safetensors").write_bytes(tiny_model_path.read_bytes())
    # A training run's --out folder loads its generator.safetensors (was: "no such checkpoint").
    assert load_model(parse_args(["--model", str(run)])).preset == "tiny"
    with pytest.raises(LaunchError, match=r"--model .*: a folder without generator.safetensors"):
        load_model(parse_args(["--model", str(tmp_path)]))
    with pytest.raises(LaunchError) as error:
        load_model(parse_args(["--model", str(tiny_model_path), "--preset", "cpu"]))
    # The fix is a flag, not retraining: the message says which, on one line.
    assert "pass --preset tiny" in str(error.value) and "neural_render.train" not in str(error.value)
    assert "\n" not in str(error.value)


def test_precision_the_backend_cannot_run_is_said(monkeypatch, capsys):
    import game.startup.rendering as runtime

    from game.startup.rendering import make_renderer

    class Fp32Only:  # like onnxruntime on the CPU, which runs fp32 whatever is asked
        def __init__(self, model, backend, device, precision, size, compile=False):
            self.backend_name, self.device_name, self.precision, self.compiled = backend, "cpu", "fp32", False

    monkeypatch.setattr(runtime, "Renderer", Fp32Only)
    make_renderer(object(), "onnxruntime", None, "fp16", (64, 32))
    assert "--precision fp16 is not available with onnxruntime on cpu; running fp32" in capsys.readouterr().err


def test_hud_draws_in_the_smallest_window(headless_env):
    from game.view.hud import HUD

    pygame.display.init()
    pygame.font.init()
    surface = pygame.Surface((16, 16))  # --window 16x16 crashed: "Cannot scale to negative size"
    hud = HUD()
    hud.notify("source: procedural world (no CARLA server answered at 127.0.0.1:2000)")
    hud.show_help = True
    surface.fill((10, 200, 30))
    hud.draw(surface, ["neural-drive", ("steer", 0.2, -1.0, 1.0)], banner="UNTRAINED MODEL", recording="REC 1")
    pixels = pygame.surfarray.array3d(surface).reshape(-1, 3)
    assert (pixels != (10, 200, 30)).any(axis=1).any()  # it drew (clipped) rather than skipping or crashing


def test_hud_panel_stays_above_the_notices_in_the_2x2_layout(headless_env):
    # At 1280x720 the info panel sits in the bottom-right 640x360 cell; its last rows used to run under
    # the bottom-centred notice ("source: ...") that every start shows.
    from game.view.hud import HUD, PANEL_WIDTH

    pygame.display.init()
    pygame.font.init()
    surface = pygame.Surface((1280, 720))
    surface.fill((10, 200, 30))
    hud = HUD()
    lines = ["source    procedural"] * 9 + [""] + ["render      12.7 ms"] * 4 + [""] + ["autopilot on"] * 5
    hud.draw(surface, lines, origin=(640, 360))  # no notice showing: the panel must not move when one comes
    panel = pygame.surfarray.array3d(surface)[640:640 + PANEL_WIDTH]  # (x, y, rgb)
    drawn_rows = (panel != (10, 200, 30)).any(axis=2).any(axis=0).nonzero()[0]
    assert drawn_rows.max() < 720 - hud.notice.zone_height()
    assert drawn_rows.min() > 320  # slid up into the letterbox band, not over the pane above


def test_replay_is_resampled_to_res(make_app):
    app = make_app("--headless", "--frames", "2", "--record", "sessions")
    app.run()
    (session,) = Path("sessions").iterdir()
    # --res used to be ignored by a replay
    replay = make_app("--headless", "--source", "replay", "--replay", str(session), "--res", "128x64")
    assert replay.size == (128, 64) and "resampled to 128x64" in replay.source_reason
    assert replay.run() == 0 and replay.rendered.shape == (64, 128, 3)


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


class _Server:
    """A TCP server on 127.0.0.1 that answers every connection with fixed bytes; by_line: only once a
    line has ended, as an HTTP server does."""

    def __init__(self, reply: bytes, by_line: bool = False) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        threading.Thread(target=self._serve, args=(reply, by_line), daemon=True).start()

    def _serve(self, reply: bytes, by_line: bool) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with connection, connection.makefile("rb") as reader:
                if by_line:
                    reader.readline()
                else:
                    connection.recv(64)
                connection.sendall(reply)

    def close(self) -> None:
        self.socket.close()


def test_a_server_that_is_not_carla_is_refused_before_libcarla(headless_env):
    from carla_bridge.client.probe import not_carla_reason
    from game.startup.sources import make_source

    web = _Server(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")  # aborted the process (134)
    rpc = _Server(b"\x94\x01\x00\xc0\xa60.9.16")  # msgpack-rpc response [1, 0, nil, "0.9.16"]
    try:
        reason = not_carla_reason("127.0.0.1", web.port)
        assert reason == "it answered 'HTTP/1.1 400 Bad Request', not a msgpack-rpc reply"
        assert not_carla_reason("127.0.0.1", rpc.port) is None  # a CARLA-like reply passes
        pytest.importorskip("carla", reason="CarlaSource does the probe; the carla client is not installed")
        with pytest.raises(LaunchError, match=r"is not CARLA \(it answered 'HTTP/1.1 400 Bad Request'"):
            make_source(parse_args(["--source", "carla", "--port", str(web.port), "--res", RES]), (64, 32))
        choice = make_source(parse_args(["--port", str(web.port), "--res", RES]), (64, 32))
        try:  # --source auto falls back to the built-in world and says why
            assert choice.name == "procedural" and "is not CARLA" in choice.reason
        finally:
            choice.source.close()
    finally:
        web.close()
        rpc.close()


def test_a_line_based_server_is_told_from_carla_at_once(headless_env):
    from carla_bridge.client.probe import not_carla_reason

    web = _Server(b"HTTP/1.0 400 Bad request syntax\r\n\r\n", by_line=True)  # what `python3 -m http.server` says
    try:
        started = time.monotonic()
        reason = not_carla_reason("127.0.0.1", web.port, timeout_s=5.0)
        # it waited for a line end the probe never sent: 2 s of probe, then 10 s of client time-out
        assert reason == "it answered 'HTTP/1.0 400 Bad request syntax', not a msgpack-rpc reply"
        assert time.monotonic() - started < 3.0  # the old probe waited out its whole 5 s
    finally:
        web.close()


def test_a_host_that_does_not_resolve_is_named(headless_env, capsys):
    pytest.importorskip("carla", reason="CarlaSource says it; the carla client is not installed")
    from game.startup.sources import make_source

    with pytest.raises(LaunchError, match=r"^the host name 'nosuchhost\.invalid' does not resolve \(.*\): "
                                          r"check --host"):  # was "no CARLA server answers ... start CARLA"
        make_source(parse_args(["--source", "carla", "--host", "nosuchhost.invalid", "--res", RES]), (64, 32))
    choice = make_source(parse_args(["--host", "nosuchhost.invalid", "--res", RES]), (64, 32))
    try:
        assert choice.name == "procedural" and "'nosuchhost.invalid' does not resolve" in choice.reason
    finally:
        choice.source.close()


def test_a_failed_carla_start_leaves_no_empty_record_folder(headless_env, tiny_model_path, capsys):
    pytest.importorskip("carla", reason="CarlaSource fails the start; the carla client is not installed")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    record = headless_env / "recordings" / "carla"
    argv = ["--headless", "--res", RES, "--model", str(tiny_model_path), "--source", "carla", "--port", str(port),
            "--record", str(record)]
    assert main(parse_args(argv)) == 2
    _one_line_error(capsys, "no CARLA server answers")
    assert not (headless_env / "recordings").exists()  # both folders made for the drive are gone again


def test_carla_filter_that_matches_no_car_is_one_line(monkeypatch):
    import game.startup.sources as carla_source

    from game.startup.sources import make_source

    def no_car(**options):  # what CarlaSource raises for --filter walker.* (was a traceback)
        raise ValueError(f"--filter {options['vehicle_filter']!r} matches no 4-wheeled vehicle blueprint")

    monkeypatch.setattr(carla_source, "CarlaSource", no_car)
    with pytest.raises(LaunchError, match=r"--filter 'walker\.\*' matches no 4-wheeled"):
        make_source(parse_args(["--source", "carla", "--filter", "walker.*"]), (64, 32))


def test_missing_replay_names_the_folder_once(headless_env, capsys):
    assert main(parse_args(["--headless", "--replay", "nope"])) == 2
    err = _one_line_error(capsys, "--replay nope: not a session")
    assert err.count("nope") == 1  # was "--replay nope: nope: not a session"


def test_sdl_offscreen_fallback_is_headless(headless_env, monkeypatch):
    import game.view.display as display

    # With a stale DISPLAY, SDL silently picks its offscreen driver: set_mode works, nothing shows.
    monkeypatch.setattr(display, "headless_reason", lambda requested: (False, None))
    monkeypatch.setenv("DISPLAY", ":1234")
    try:
        _, headless, message = display.open_display((64, 32), requested_headless=False)
    finally:
        pygame.display.quit()
    assert headless and "no window could be opened on display :1234" in message


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
    # The tick came back only once the backlog was down to the limit (it used to outrun the writer
    # until the recorder gave up: "the writer fell 8 MB behind").
    assert disk.frames_queued - disk.written == HEADLESS_BACKLOG_FRAMES


def test_profile_default_report_folder_is_checked_up_front(headless_env, capsys):
    (headless_env / "reports").write_text("a file where reports/<timestamp>/ would go")
    assert main(parse_args(["--headless", "--frames", "1", "--source", "procedural", "--profile"])) == 2
    _one_line_error(capsys, "--profile reports", "pass --report DIR")


def test_an_exported_onnx_as_model_says_what_to_pass(tmp_path):
    from game.startup.rendering import load_model

    onnx = tmp_path / "cpu_256x128.onnx"
    onnx.write_bytes(b"\x08\x07")  # was: "not a readable safetensors file (header too large)"
    with pytest.raises(LaunchError, match=r"takes the generator's \.safetensors weights"):
        load_model(parse_args(["--model", str(onnx)]))


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
    if presses == 1:  # one more Ctrl+C only says what is being finished (it used to abandon the teardown)
        assert closed == ["recording", "source"] and "still closing" in err
    else:
        assert "teardown abandoned" in err


def test_replay_size_the_model_cannot_take_says_to_resample():
    import torch

    from game.startup.rendering import ModelChoice, check_size
    from neural_render.model import build_generator

    torch.manual_seed(0)
    choice = ModelChoice(build_generator("tiny"), "tiny", None, untrained=True, preset="tiny")
    with pytest.raises(LaunchError, match=r"--replay s: size 60x36: .* resample the session with --res"):
        check_size(choice, (60, 36), "--replay s")


def test_a_recording_cancelled_before_its_first_frame_leaves_no_record_folder(headless_env, tiny_model_path,
                                                                              monkeypatch, tmp_path):
    """QA: the session folder was removed, but the --record DIR that the run had made stayed, empty."""
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
