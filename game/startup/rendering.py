"""Which generator to run and through which backend: --model/--preset/--backend/--device/--precision,
the render size, and a warning when a CPU drive at that size will not fit in memory.

No --model: the shipped model (neural_render.checkpoint.DEFAULT_MODEL_PATH) when it exists, else an
UNTRAINED generator of --preset (default cpu), which the console and the screen say loudly: its output
is noise-like colour blobs, not a photo. A --model path that is missing or corrupt is an error that
tells how to train one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from carla_bridge.core.values import is_int
from game.signals import interruption_in
from game.startup.cli import GameConfig, LaunchError, retrain_command
from neural_render.checkpoint import CheckpointError, default_model_path, load_generator, read_metadata, weights_path
from neural_render.model import PRESETS, build_generator
from neural_render.runtime import Renderer
from neural_render.runtime.common import compile_note, precision_note
from neural_render.runtime.remote import RemoteRenderer
from neural_render.runtime.select import cuda_device_problem

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

    def banner(self) -> str | None:
        """The red line across the window (and the console warning) for a model not worth judging."""
        if self.untrained:
            return f"UNTRAINED MODEL ({self.preset}): train one with  {retrain_command(self.preset)}"
        if self.barely_trained:
            return (f"BARELY TRAINED MODEL ({self.preset}, {self.steps} training steps): train it longer "
                    f"(--resume); the shipped cpu model took 6,002")
        return None


def load_model(config: GameConfig) -> ModelChoice:
    """--model, else the shipped weights of --preset (models/<preset>.safetensors). A preset that ships
    no weights (tiny, gpu for now) runs untrained, loudly; a shipped file that is missing or corrupt is
    a clear error naming the retrain command, never a silent fallback. Every error is one line."""
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
        # an exported or foreign file: say what the flag takes rather than "not a readable safetensors file"
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
    preset = model.config.name
    steps = meta.get("step")
    steps = int(steps) if is_int(steps) and steps >= 0 else None
    return ModelChoice(model, f"{path.stem} ({preset} preset)", path, untrained=False, preset=preset, steps=steps)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def untrained_model(preset: str) -> ModelChoice:
    """A freshly initialised generator (seeded, so two runs look the same)."""
    torch.manual_seed(0)
    model = build_generator(preset).eval()
    return ModelChoice(model, f"{preset} UNTRAINED", None, untrained=True, preset=preset)


def resolve_device(config: GameConfig) -> str:
    """--device, checked: asking for a GPU that is not there is an error rather than a silent CPU run
    (at the CUDA default size, 512x256, with no word). Every GPU path here (torch, TensorRT,
    onnxruntime's CUDA provider beside torch) needs torch's CUDA."""
    if config.device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    problem = cuda_device_problem(config.device)
    if problem:
        raise LaunchError(f"--device {config.device}: {problem}")
    return config.device


def default_resolution(choice: ModelChoice, device: str) -> tuple[int, int]:
    """Render size when --res is not given: what the network runs interactively on that device. The
    gpu preset's network (by its widths and blocks, not by the name a file's metadata gives it) gets
    its 1024x512; any other network the CPU or CUDA default."""
    if replace(choice.model.config, name="gpu") == PRESETS["gpu"]:
        return 1024, 512
    return (512, 256) if device.startswith("cuda") else (256, 128)


def check_size(choice: ModelChoice, size: tuple[int, int], flag: str) -> None:
    """The generator downsamples by a power of two, so sizes must be multiples of it; say so up front,
    naming the flag, rather than from deep inside a backend."""
    try:
        choice.model.config.check_size(*size)
    except ValueError as error:
        # A session recorded at a size this model cannot take can still be replayed, resampled.
        fix = "; resample the session with --res WIDTHxHEIGHT" if flag.startswith("--replay") else ""
        raise LaunchError(f"{flag}: {_one_line(error)}{fix}") from None


# What --compile costs before the first frame shows, as measured (models/gpu.md; the 2-core CPU box).
COMPILE_WAIT = ("torch's first frames compile the generator (measured: 30 s on an H200 for the gpu preset at "
                "1024x512, 19 s on a 2-core CPU for the cpu preset at 256x128)")


def make_renderer(model, backend: str, device: str | None, precision: str, size: tuple[int, int],
                  compile: bool = False, server: str | None = None):
    """A neural_render.runtime.Renderer, or with backend 'remote' a RemoteRenderer of the render service
    at ``server`` (which runs its own model; --model names the local one the size was checked against);
    LaunchError naming the flag when the backend cannot start or the server does not answer."""
    try:
        if backend == "remote":
            return RemoteRenderer(server, size=size, num_classes=model.config.num_classes)
        renderer = Renderer(model, backend=backend, device=device, precision=precision, size=size, compile=compile)
    except (ValueError, RuntimeError, MemoryError, ImportError, ConnectionError) as error:  # MemoryError: too big
        interrupt = interruption_in(error)
        if interrupt is not None:  # Ctrl+C or SIGTERM while the backend started: not a backend failure
            raise interrupt from None
        flags = f"--backend remote --server {server}" if backend == "remote" else \
            f"--backend {backend} --device {device or 'auto'} --precision {precision}"
        raise LaunchError(f"{flags}: {_one_line(error)}") from None
    note = precision_note("--precision", precision, renderer.precision,
                          renderer.backend_name, renderer.device_name)  # e.g. onnxruntime on the CPU: fp32 only
    if note:
        print(note, file=sys.stderr)
    note = compile_note("--compile", compile, renderer.compiled, renderer.backend_name)
    if note and backend == "auto" and renderer.backend_name in ("openvino", "onnxruntime"):
        # auto picks one of these on the CPU; the note alone left the user guessing how to compile
        note += " (--backend auto chose it; pass --backend torch to compile)"
    if note:
        print(note, file=sys.stderr)
    elif compile and renderer.backend_name == "torch":  # the wait would otherwise look like a hang
        print(f"--compile: {COMPILE_WAIT}; then it runs compiled", file=sys.stderr)
    return renderer


def next_backend(names, current: str, tried: str | None) -> str:
    """The backend K switches to: the one after the last one tried (not after the current one), so a
    backend that fails to start is skipped on the next press instead of being retried forever."""
    cursor = tried if tried in names else current
    i = names.index(cursor) if cursor in names else -1
    candidate = names[(i + 1) % len(names)]
    return names[(i + 2) % len(names)] if candidate == current else candidate


# A CPU drive's peak resident memory, measured (`python launch.py --headless --frames 3 --res R`, the
# shipped cpu model on ONNX Runtime's CPU provider, 2-core box): 0.51 GB at 256x128, 2.33 GB at 1024x512,
# 7.46 GB at 2048x1024: a straight line of about 3.3 kB per pixel above 0.6 GB. GPU runs keep their big
# tensors on the device and are not estimated. It only warns: other presets and backends differ, and
# without it the out-of-memory killer ends a run at `--res 8192x4096` (exit 137) with no word of why.
CPU_BYTES_PER_PIXEL = 3300
CPU_BASE_BYTES = 0.6e9


def memory_warning(size: tuple[int, int], device: str) -> str | None:
    """One line when a CPU drive at ``size`` likely needs more memory than the machine has available."""
    available = available_bytes()
    if device != "cpu" or available is None:
        return None
    width, height = size
    need = CPU_BASE_BYTES + CPU_BYTES_PER_PIXEL * width * height
    if need <= available:
        return None
    return (f"warning: at {width}x{height} a drive on the CPU needs about {need / 2**30:.0f} GiB of memory "
            f"(measured: about {CPU_BYTES_PER_PIXEL / 1000:.1f} kB per pixel) and {available / 2**30:.1f} GiB is "
            f"available: the system will likely kill it; pick a smaller --res")


def warn_if_memory_short(size: tuple[int, int], device: str) -> None:
    shortage = memory_warning(size, device)
    if shortage:
        print(shortage, file=sys.stderr)


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux), or None where there is none."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
