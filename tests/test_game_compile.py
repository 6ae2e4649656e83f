"""launch.py --compile: torch.compile for the drive, the export and the backend comparison; a backend
with nothing to compile says so, and what ran compiled is shown and reported."""

from __future__ import annotations

import types

import numpy as np
import pytest

from game.cli import parse_args
from game_support import headless_env, make_app, tiny_model_path  # noqa: F401  (fixtures)
from neural_render.model import build_generator
from neural_render.runtime import Renderer

SIZE = (64, 32)


@pytest.fixture(scope="module")
def tiny():
    return build_generator("tiny").eval()


def test_the_flag_is_off_unless_given():
    assert parse_args([]).compile is False
    assert parse_args(["--compile"]).compile is True


def test_torch_is_built_compiled_and_the_wait_is_announced(tiny, capsys):
    from game.rendering import make_renderer

    renderer = make_renderer(tiny, "torch", "cpu", "fp32", SIZE, compile=True)
    assert renderer.compiled  # torch.compile wraps at once; the kernels compile at the first frame
    assert "--compile: the first frames compile the generator" in capsys.readouterr().err
    renderer.close()
    assert renderer.compiled is False  # a closed renderer runs nothing


def test_onnxruntime_says_it_has_nothing_to_compile(tiny, tmp_path, monkeypatch, capsys):
    from game.rendering import make_renderer

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    renderer = make_renderer(tiny, "onnxruntime", "cpu", "fp32", SIZE, compile=True)
    assert renderer.compiled is False
    assert capsys.readouterr().err == ("note: --compile applies to the torch backend (and TensorRT's CUDA graphs) "
                                       "only; onnxruntime runs uncompiled\n")


def test_without_the_flag_nothing_is_said_and_nothing_compiles(tiny, capsys):
    from game.rendering import make_renderer

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


def test_the_backend_comparison_passes_compile_on_and_reports_what_ran(tiny, monkeypatch):
    import neural_render.runtime as runtime

    from game.profiler import compare_backends

    built = []

    class Recording(Renderer):
        def __init__(self, *args, **kwargs):
            built.append(kwargs.get("compile"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(runtime, "Renderer", Recording)
    frames = [types.SimpleNamespace(labels=np.zeros(SIZE[::-1], np.uint8), flow=None, cut=i == 0)
              for i in range(3)]
    rows = compare_backends(frames, tiny, SIZE, backends=["torch"], device="cpu", warmup_frames=1, quiet=True)
    assert built == [False] and rows[0]["compiled"] is False
    monkeypatch.setattr(Recording, "compiled", property(lambda self: self._backend is not None))
    rows = compare_backends(frames, tiny, SIZE, backends=["torch"], device="cpu", warmup_frames=1, quiet=True,
                            compile=True)
    assert built == [False, True] and rows[0]["compiled"] is True


def test_the_drive_shows_and_records_that_it_runs_compiled(make_app):
    from game.loop import tick
    from game.status import hud_lines, session_meta

    app = make_app("--headless", "--frames", "2", "--compile")
    assert tick(app)  # the first frame compiles the tiny generator
    backend_line = next(line for line in hud_lines(app, app.frame) if str(line).startswith("backend"))
    assert backend_line == "backend   torch cpu fp32 compiled"
    assert session_meta(app)["compiled"] is True
