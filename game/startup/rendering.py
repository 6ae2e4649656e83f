"""Which generator to run and through which backend: --model/--preset/--backend/--device/--precision.

No --model: the shipped model (neural_render.checkpoint.DEFAULT_MODEL_PATH) when it exists, else an
UNTRAINED generator of --preset (default cpu), which the console and the screen say loudly: its output
is noise-like colour blobs, not a photo. A --model path that is missing or corrupt is an error that
tells how to train one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from carla_bridge.core.values import is_int
from game.startup.cli import GameConfig, LaunchError, retrain_command
from game.interrupts import interruption_in

DEFAULT_PRESET = "cpu"
SHIPPED_PRESETS = ("cpu",)  # presets with trained weights in models/ (see models/cpu.md)
# Fewer steps than this is a try (a test run, `--steps 5`), not a model: under a tenth of the shipped
# cpu model's 6,002 (models/cpu.md). A round threshold, not a measured quality boundary.
BARELY_TRAINED_STEPS = 500


@dataclass
class ModelChoice:
    model: object  # neural_render.model.Vid2VidGenerator
    label: str  # shown in the HUD
    path: Path | None
    untrained: bool
    preset: str
    steps: int | None = None  # training steps, from the checkpoint's metadata (None: not recorded)

    @property
    def barely_trained(self) -> bool:
        """Saved after too few steps to look like anything (a test run, a --steps 5 try): the drive says
        so, as it does for an untrained network, rather than show noise as the model's best."""
        return self.steps is not None and self.steps < BARELY_TRAINED_STEPS


def load_model(config: GameConfig) -> ModelChoice:
    """--model, else the shipped weights of --preset (models/<preset>.safetensors). A preset that ships
    no weights (tiny, gpu for now) runs untrained, loudly; a shipped file that is missing or corrupt is
    a clear error naming the retrain command, never a silent fallback. Every error is one line."""
    from neural_render.checkpoint import (CheckpointError, default_model_path, load_generator, read_metadata,
                                          weights_path)

    preset = config.preset or DEFAULT_PRESET
    path = Path(config.model) if config.model is not None else default_model_path(preset)
    if config.model is None and not path.exists():
        if preset not in SHIPPED_PRESETS:
            return untrained_model(preset)
        raise LaunchError(f"the shipped model {path} is missing (an incomplete checkout or install?): restore it "
                          f"with `git checkout -- models/`, or retrain it: {retrain_command(preset)}")
    flag = "--model" if config.model is not None else "the shipped model"
    if path.is_dir():  # a training run's --out folder: the weights it saved there
        try:
            path = weights_path(path)
        except CheckpointError as error:
            raise LaunchError(f"{flag} {_one_line(error)}") from None
    if path.suffix.lower() in (".onnx", ".engine", ".plan", ".pt", ".pth", ".ckpt"):
        # an exported or foreign file: it failed as "not a readable safetensors file (header too large)"
        raise LaunchError(f"{flag} {path}: takes the generator's .safetensors weights (e.g. "
                          f"{default_model_path(DEFAULT_PRESET)}); --backend builds its ONNX or engine from them")
    if not path.exists():
        raise LaunchError(f"{flag} {path}: no such file; pass a trained .safetensors (the shipped one is "
                          f"{default_model_path(DEFAULT_PRESET)}), or train one: {retrain_command(preset)}")
    try:
        stored_config, meta = read_metadata(path)
        stored = stored_config.name
        if config.preset is not None and stored != config.preset:
            raise LaunchError(f"{flag} {path} holds a '{stored}' generator, not --preset {config.preset}: "
                              f"pass --preset {stored} (or leave --preset out)")
        model = load_generator(path)
    except CheckpointError as error:  # its message names the file, the problem and what to do
        # The shipped file is ours to restore: give the exact command. A user's file has its own advice.
        retrain = f"; retrain: {retrain_command(preset)}" if config.model is None else ""
        raise LaunchError(f"{flag}: {_one_line(error)}{retrain}") from None
    model.eval()
    preset = getattr(getattr(model, "config", None), "name", config.preset or "?")
    steps = meta.get("step")
    steps = int(steps) if is_int(steps) and steps >= 0 else None
    return ModelChoice(model, f"{path.stem} ({preset} preset)", path, untrained=False, preset=preset, steps=steps)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def untrained_model(preset: str) -> ModelChoice:
    """A freshly initialised generator (seeded, so two runs look the same)."""
    import torch

    from neural_render.model import build_generator

    torch.manual_seed(0)
    model = build_generator(preset).eval()
    return ModelChoice(model, f"{preset} UNTRAINED", None, untrained=True, preset=preset)


def resolve_device(config: GameConfig) -> str:
    """--device, checked: asking for a GPU that is not there is an error rather than a silent CPU run
    (QA: `--device cuda` ran onnxruntime on the CPU at the CUDA default size, 512x256, with no word).
    Every GPU path here (torch, TensorRT, onnxruntime's CUDA provider beside torch) needs torch's CUDA."""
    import torch

    if config.device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    from neural_render.runtime.select import cuda_device_problem

    problem = cuda_device_problem(config.device)
    if problem:
        raise LaunchError(f"--device {config.device}: {problem}")
    return config.device


def default_resolution(preset: str, device: str) -> tuple[int, int]:
    """Render size when --res is not given: what the preset runs interactively on that device."""
    if preset == "gpu":
        return 1024, 512
    return (512, 256) if device.startswith("cuda") else (256, 128)


def check_size(choice: ModelChoice, size: tuple[int, int], flag: str) -> None:
    """The generator downsamples by a power of two, so sizes must be multiples of it; say so up front,
    naming the flag, rather than from deep inside a backend."""
    check = getattr(getattr(choice.model, "config", None), "check_size", None)
    if check is None:
        return
    try:
        check(*size)
    except ValueError as error:
        # A session recorded at a size this model cannot take can still be replayed, resampled.
        fix = "; resample the session with --res WIDTHxHEIGHT" if flag.startswith("--replay") else ""
        raise LaunchError(f"{flag}: {_one_line(error)}{fix}") from None


# What --compile costs before the first frame shows, as measured (models/gpu.md; the 2-core CPU box).
COMPILE_WAIT = ("torch's first frames compile the generator (measured: 30 s on an H200 for the gpu preset at "
                "1024x512, 19 s on a 2-core CPU for the cpu preset at 256x128)")


def make_renderer(model, backend: str, device: str | None, precision: str, size: tuple[int, int],
                  compile: bool = False):
    """A neural_render.runtime.Renderer; LaunchError naming the flag when the backend cannot start."""
    from neural_render.runtime import Renderer
    from neural_render.runtime.common import compile_note, precision_note

    try:
        renderer = Renderer(model, backend=backend, device=device, precision=precision, size=size, compile=compile)
    except (ValueError, RuntimeError, MemoryError, ImportError) as error:  # MemoryError: the size is too big
        interrupt = interruption_in(error)
        if interrupt is not None:  # Ctrl+C or SIGTERM while the backend started: not a backend failure
            raise interrupt from None
        raise LaunchError(
            f"--backend {backend} --device {device or 'auto'} --precision {precision}: {_one_line(error)}"
        ) from None
    note = precision_note("--precision", precision, getattr(renderer, "precision", precision),
                          renderer.backend_name, renderer.device_name)  # e.g. onnxruntime on the CPU: fp32 only
    if note:
        print(note, file=sys.stderr)
    note = compile_note("--compile", compile, renderer.compiled, renderer.backend_name)
    if note and backend == "auto" and renderer.backend_name == "onnxruntime":
        # auto picks onnxruntime on the CPU; the note alone left the user guessing how to compile
        note += " (--backend auto chose it; pass --backend torch to compile)"
    if note:
        print(note, file=sys.stderr)
    elif compile and renderer.backend_name == "torch":  # the wait would otherwise look like a hang
        print(f"--compile: {COMPILE_WAIT}; then it runs compiled", file=sys.stderr)
    return renderer


def available_backends(device: str | None) -> list[str]:
    from neural_render.runtime import available_backends as available

    return list(available(device))
