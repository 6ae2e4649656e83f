"""Model, device and backend choice (game.startup.rendering): a wrong --device, --model, --preset or
--precision is one line that says what to pass."""

from __future__ import annotations

import pytest

pygame = pytest.importorskip("pygame")

from game.startup.cli import LaunchError, parse_args  # noqa: E402
from support.game import tiny_model_path  # noqa: E402,F401 (fixtures)


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


def test_an_exported_onnx_as_model_says_what_to_pass(tmp_path):
    from game.startup.rendering import load_model

    onnx = tmp_path / "cpu_256x128.onnx"
    onnx.write_bytes(b"\x08\x07")  # was: "not a readable safetensors file (header too large)"
    with pytest.raises(LaunchError, match=r"takes the generator's \.safetensors weights"):
        load_model(parse_args(["--model", str(onnx)]))


def test_replay_size_the_model_cannot_take_says_to_resample():
    import torch

    from game.startup.rendering import ModelChoice, check_size
    from neural_render.model import build_generator

    torch.manual_seed(0)
    choice = ModelChoice(build_generator("tiny"), "tiny", None, untrained=True, preset="tiny")
    with pytest.raises(LaunchError, match=r"--replay s: size 60x36: .* resample the session with --res"):
        check_size(choice, (60, 36), "--replay s")


def test_the_default_size_comes_from_the_network_not_its_name(tmp_path):
    """cpu-preset weights whose metadata only claims the name 'gpu' get the cpu default size; the gpu
    network gets its 1024x512 whatever it is called."""
    from dataclasses import replace

    from game.startup.rendering import default_resolution, load_model, untrained_model
    from neural_render.checkpoint import save_generator
    from neural_render.model import PRESETS, build_generator

    named_gpu = save_generator(build_generator(replace(PRESETS["cpu"], name="gpu")), tmp_path / "cpu-as-gpu.safetensors")
    assert default_resolution(load_model(parse_args(["--model", str(named_gpu)])), "cpu") == (256, 128)
    gpu = untrained_model("gpu")
    assert default_resolution(gpu, "cpu") == (1024, 512)
    renamed = save_generator(build_generator(replace(PRESETS["gpu"], name="mine")), tmp_path / "mine.safetensors")
    assert default_resolution(load_model(parse_args(["--model", str(renamed)])), "cuda") == (1024, 512)
