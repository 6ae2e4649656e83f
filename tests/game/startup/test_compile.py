"""launch.py --compile: torch.compile for the drive, the export and the backend comparison; a backend
with nothing to compile says so, and what ran compiled is shown and reported."""

from __future__ import annotations

import types

import numpy as np
import pytest

from game.startup.cli import parse_args
from neural_render.model import build_generator
from neural_render.runtime import Renderer
from support.game import headless_env, make_app, tiny_model_path  # noqa: F401  (fixtures)

SIZE = (64, 32)


@pytest.fixture(scope="module")
def tiny():
    return build_generator("tiny").eval()


@pytest.fixture()
def compile_calls(monkeypatch):
    """torch.compile replaced by a pass-through that records its calls: the wiring is what is tested
    here, and a real compile needs a C++ toolchain (and ~20 s) on a CPU machine."""
    import torch

    calls = []

    def fake_compile(module, **options):
        calls.append(options)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    return calls


def test_the_flag_is_off_unless_given():
    assert parse_args([]).compile is False
    assert parse_args(["--compile"]).compile is True


def test_torch_is_built_compiled_and_the_wait_is_announced(tiny, compile_calls, capsys):
    from game.startup.rendering import make_renderer

    renderer = make_renderer(tiny, "torch", "cpu", "fp32", SIZE, compile=True)
    assert renderer.compiled  # torch.compile wraps at once; the kernels compile at the first frame
    assert compile_calls == [{"mode": "default", "fullgraph": True, "dynamic": False}]  # CUDA: reduce-overhead
    assert "--compile: torch's first frames compile the generator" in capsys.readouterr().err
    renderer.close()
    assert renderer.compiled is False  # a closed renderer runs nothing


def test_onnxruntime_says_it_has_nothing_to_compile(tiny, tmp_path, monkeypatch, capsys):
    from game.startup.rendering import make_renderer

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    renderer = make_renderer(tiny, "onnxruntime", "cpu", "fp32", SIZE, compile=True)
    assert renderer.compiled is False
    assert capsys.readouterr().err == ("note: --compile applies to the torch backend (and TensorRT's CUDA graphs) "
                                       "only; onnxruntime runs uncompiled\n")


def test_without_the_flag_nothing_is_said_and_nothing_compiles(tiny, capsys):
    from game.startup.rendering import make_renderer

    assert make_renderer(tiny, "torch", "cpu", "fp32", SIZE).compiled is False
    assert capsys.readouterr().err == ""


def test_a_compile_that_fails_at_the_first_frame_runs_eager_and_says_so(tiny, caplog):
    renderer = Renderer(tiny, backend="torch", device="cpu", size=SIZE, compile=True)

    def no_compiler(*inputs):
        raise RuntimeError("InductorError: no C++ compiler found")

    renderer._backend._run = no_compiler  # as torch.compile fails on a machine without a toolchain
    frame = types.SimpleNamespace(labels=np.zeros(SIZE[::-1], np.uint8), flow=None, cut=False)
    assert renderer.render(frame).shape == (SIZE[1], SIZE[0], 3)
    assert renderer.compiled is False
    assert "torch.compile failed" in caplog.text


def test_the_backend_comparison_passes_compile_on_and_reports_what_ran(tiny, compile_calls):
    from game.profiler.compare import compare_backends

    frames = [types.SimpleNamespace(labels=np.zeros(SIZE[::-1], np.uint8), flow=None, cut=i == 0)
              for i in range(3)]
    rows = compare_backends(frames, tiny, SIZE, backends=["torch"], device="cpu", warmup_frames=1, quiet=True)
    assert compile_calls == [] and rows[0]["compiled"] is False
    rows = compare_backends(frames, tiny, SIZE, backends=["torch"], device="cpu", warmup_frames=1, quiet=True,
                            compile=True)
    assert len(compile_calls) == 1 and rows[0]["compiled"] is True


def test_the_drive_shows_and_records_that_it_runs_compiled(make_app, compile_calls):

    app = make_app("--headless", "--frames", "2", "--compile")
    assert app.tick() and len(compile_calls) == 1
    backend_line = next(line for line in app.hud_lines(app.frame) if str(line).startswith("backend"))
    assert backend_line == "backend   torch cpu fp32 compiled"
    assert app.session_meta()["compiled"] is True


def test_a_stop_signal_while_the_first_frame_compiles_stops_at_once(make_app, capsys):
    """SIGTERM (or Ctrl+C) during the first-frame compile (19 s on a CPU) stops at once: docker stop
    gives 10 s of grace before its SIGKILL, which would leave a half-written recording."""
    import os
    import signal
    import time

    app = make_app("--headless", "--frames", "5", "--compile", "--record", "sessions")
    assert app.renderer.compiled and app.renderer.frames_rendered == 0
    compiled = []

    def compiling(frame):  # stands in for the first frame's compile: long, and interruptible
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            time.sleep(0.01)
        compiled.append(True)
        return np.zeros((SIZE[1], SIZE[0], 3), np.uint8)

    app.renderer.render = compiling
    assert app.run() == 130
    assert compiled == [] and app.ticks == 0  # stopped inside the compile, not after it
    assert "SIGTERM: closing" in capsys.readouterr().out
    assert app.stop.compiling is False


def test_a_compiled_drive_never_measures_its_compile(make_app):
    """`--frames 1 --compile --profile` warms up past the compile (19 s on a CPU), so the report's latency
    is the compiled model's, not the compile's (which would read as 0.1 fps)."""
    from game.app.timing import warmup_frames

    assert warmup_frames(1) == 0 and warmup_frames(1, compiled=True) == 1
    assert warmup_frames(30, compiled=True) == 10
    app = make_app("--headless", "--frames", "1", "--compile", "--report", "report")
    assert app.profiler.warmup_frames == 1


def test_auto_picking_a_cpu_graph_backend_says_how_to_compile(tiny, tmp_path, monkeypatch, capsys):
    """`--compile` with the default --backend auto on a CPU runs openvino (onnxruntime without it), and
    the note says how to get a compiled torch model instead."""
    from game.startup.rendering import make_renderer
    from neural_render.runtime import resolve_backend

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    chosen, _ = resolve_backend("auto", "cpu")
    renderer = make_renderer(tiny, "auto", "cpu", "fp32", SIZE, compile=True)
    assert renderer.backend_name == chosen and chosen in ("openvino", "onnxruntime") and renderer.compiled is False
    assert capsys.readouterr().err.endswith(f"{chosen} runs uncompiled (--backend auto chose it; pass --backend "
                                            "torch to compile)\n")


def test_the_comparison_table_names_the_rows_that_ran_compiled():
    """The comparison table and its "fastest: ..." line say which rows ran compiled ("2.0x faster than
    torch compiled")."""
    from game.profiler.table import comparison_table

    timing = dict(device="cpu", precision="fp32", frames=5, p95=0, p99=0, mean=0, fps=0, error=None, cut_short=None)
    text = comparison_table([dict(backend="torch", compiled=True, p50=2.0, **timing),
                             dict(backend="onnxruntime", compiled=False, p50=1.0, **timing)])
    assert text.splitlines()[2].startswith("torch compiled ")
    assert text.endswith("fastest: onnxruntime (p50 1.00 ms, 2.0x faster than torch compiled)")


def test_a_failed_compile_is_warned_in_one_whole_line(tiny, caplog):
    """The warning is one line: inductor's first line, shortened at a word end ("word ..."), never
    mid-word, and none of the lines after it."""
    renderer = Renderer(tiny, backend="torch", device="cpu", size=SIZE, compile=True)
    words = " ".join(["word"] * 60)

    def no_compiler(*inputs):
        raise RuntimeError(f"InductorError: {words}\nsecond line of the compiler's output")

    renderer._backend._run = no_compiler
    renderer.render(types.SimpleNamespace(labels=np.zeros(SIZE[::-1], np.uint8), flow=None, cut=False))
    (message,) = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert "\n" not in message and "second line" not in message
    assert message.endswith("word ...); running eager")


def test_the_backend_comparison_announces_the_compile(headless_env, tiny_model_path, tmp_path, compile_calls,
                                                     capsys):
    """`--profile --backend all --compile` says it is compiling before the compile (29 s on the CPU
    measured), so the run does not sit silent."""
    from game.startup.main import main

    argv = ["--profile", "--backend", "all", "--headless", "--frames", "2", "--compile", "--model",
            str(tiny_model_path), "--res", "64x32", "--report", str(tmp_path / "report")]
    assert main(parse_args(argv)) == 0
    out = capsys.readouterr().out
    assert out.index("--compile: torch's first frames compile") < out.index("backend comparison:")
    assert "torch compiled" in out


def test_a_one_frame_comparison_with_compile_is_refused(headless_env, tiny_model_path, capsys):
    """compare_backends measures at least one frame, so with `--frames 1` it would measure the compile
    itself: refused, with the --frames to give."""
    from game.startup.main import main

    argv = ["--profile", "--backend", "all", "--headless", "--frames", "1", "--compile", "--model",
            str(tiny_model_path), "--res", "64x32"]
    assert main(parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert "--frames 1 --compile: the first frame only compiles" in err and "--frames 2" in err


def test_a_recording_says_whether_it_ran_compiled_at_its_end(make_app, tmp_path, caplog):
    """session.json takes 'compiled' at the recording's end, so a compile that fails and runs eager is
    recorded as eager."""
    import json

    app = make_app("--headless", "--frames", "2", "--compile", "--record", str(tmp_path / "sessions"))

    def no_compiler(*inputs):
        raise RuntimeError("InductorError: no C++ compiler found")

    app.renderer._backend._run = no_compiler
    assert app.run() == 0
    (session,) = (tmp_path / "sessions").iterdir()
    meta = json.loads((session / "session.json").read_text())
    assert meta["compiled"] is False and meta["frames"] == 2
